"""The dashboard's forms (`POST /admin/login`, `POST /admin/logout`) and its pages, fuzzed over raw HTTP: any body,
content type and cookie is a problem or a page, never a 5xx, and without the form's CSRF token nothing is done."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from .harness import ADMIN_TOKEN, Background, exchange, fuzz, request_bytes, server_randomness
from .strategies import any_text, path_piece, percent_encoded, raw_value

pytestmark = server_randomness

form_fields = st.lists(st.tuples(st.sampled_from([b"csrf_token", b"token", b"next", b"x"]),
                                 st.one_of(percent_encoded, raw_value.map(lambda raw: raw.replace(b"&", b"")))),
                       max_size=4).map(lambda pairs: b"&".join(name + b"=" + value for name, value in pairs))
multipart = st.tuples(st.sampled_from([b"csrf_token", b"token", b"\xff", b""]), any_text.map(
    lambda text: text.encode("utf-8", "surrogatepass"))).map(
    lambda field: b'--b\r\nContent-Disposition: form-data; name="' + field[0] + b'"\r\n\r\n' + field[1]
    + b"\r\n--b--\r\n")
bodies = st.one_of(form_fields, multipart, st.binary(max_size=200), st.sampled_from([b"", b"--b\r\n", b"%", b"a=%ff"]))
kinds = st.sampled_from([b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=b",
                         b"multipart/form-data", b"text/plain", b"application/json", b"\xff", b"multipart/mixed"])
cookies = st.one_of(st.just([]), st.tuples(st.sampled_from([b"ra_session", b"ra_login_csrf", b"lang"]), raw_value.map(
    lambda raw: raw.replace(b";", b""))).map(lambda pair: [(b"Cookie", pair[0] + b"=" + pair[1])]))


@fuzz
@given(path=st.sampled_from([b"/admin/login", b"/admin/logout"]), body=bodies, kind=kinds, cookie=cookies)
@example(path=b"/admin/login", body=b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
         kind=b"multipart/form-data; boundary=b", cookie=[])  # a part without a name
@example(path=b"/admin/login", body=b"csrf_token=x&token=" + ADMIN_TOKEN.encode(),
         kind=b"application/x-www-form-urlencoded", cookie=[(b"Cookie", b"ra_login_csrf=y")])  # the right token
def test_forms(app: Background, logs: pytest.LogCaptureFixture, path: bytes, body: bytes, kind: bytes,
               cookie: list[tuple[bytes, bytes]]) -> None:
    answer = exchange(app, logs, "dashboard forms (login, logout)",
                      request_bytes(b"POST", path, [(b"Content-Type", kind), *cookie], body))
    assert answer.status in (400, 403, 413), answer  # never a session without the form's CSRF token
    assert b"ra_session=" not in b"".join(value.encode() for value in answer.headers.values())


@fuzz
@given(target=st.one_of(st.sampled_from([b"/admin/", b"/admin/login", b"/admin/language/zh_Hans",
                                         b"/admin/static/admin.css"]),
                        path_piece.map(lambda piece: b"/admin/" + piece)),
       query=st.one_of(st.just(b""), percent_encoded.map(lambda raw: b"?next=" + raw)), cookie=cookies,
       language=st.one_of(st.just([]), raw_value.map(lambda raw: [(b"Accept-Language", raw)])))
@example(target=b"/admin/static/../../config.py", query=b"", cookie=[], language=[])
@example(target=b"/admin/static/nothing.css", query=b"", cookie=[], language=[])  # aiohttp's static: a plain 404
@example(target=b"/admin/static/", query=b"", cookie=[], language=[])  # a folder: aiohttp's static answers 403
@example(target=b"/admin/login", query=b"", cookie=[], language=[(b"Accept-Language", b"zh;q=nan, *;q=x, \xff")])
def test_pages(app: Background, logs: pytest.LogCaptureFixture, target: bytes, query: bytes,
               cookie: list[tuple[bytes, bytes]], language: list[tuple[bytes, bytes]]) -> None:
    answer = exchange(app, logs, "dashboard pages", request_bytes(b"GET", target + query, [*cookie, *language], b""))
    assert answer.status in (200, 303, 400, 404), answer
    if answer.status == 303:
        assert answer.headers["Location"].startswith("/admin/")
