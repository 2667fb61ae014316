"""The operator's API (`/-/...`, `/metrics`), `/healthz`, and what no route serves, fuzzed over raw HTTP."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from .harness import ADMIN_TOKEN, Background, exchange, fuzz, request_bytes, server_randomness
from .strategies import (
    DIGIT_LOOKALIKES,
    hostile_headers,
    integer_text,
    json_value,
    path_piece,
    percent_encoded,
    raw_value,
)

pytestmark = server_randomness

TOKEN = (b"Authorization", f"Bearer {ADMIN_TOKEN}".encode())
authorization = st.one_of(st.just([TOKEN]), st.just([TOKEN]), st.just([]),
                          raw_value.map(lambda raw: [(b"Authorization", b"Bearer " + raw)]))
# A query value as it may arrive: percent-encoded UTF-8 of any text, any percent-encoded bytes, or raw bytes.
query_value = st.one_of(integer_text.map(lambda text: "".join(
    f"%{b:02X}" for b in text.encode("utf-8", "surrogatepass")).encode()), percent_encoded, raw_value.map(
    lambda raw: raw.replace(b" ", b"").replace(b"&", b"").replace(b"#", b"")))
READS = [b"/-/refunds", b"/-/batches", b"/-/stats", b"/-/plugins", b"/-/platforms", b"/metrics", b"/healthz"]
PARAMETERS = [b"limit", b"before", b"state", b"report_state", b"id"]


@fuzz
@given(path=st.sampled_from(READS), params=st.lists(st.tuples(st.sampled_from(PARAMETERS), query_value), max_size=3),
       auth=authorization)
@example(path=b"/-/refunds", params=[(b"limit", b"9" * 5000)], auth=[TOKEN])  # int(): ValueError past 4300 digits
@example(path=b"/-/refunds", params=[(b"before", b"9" * 22)], auth=[TOKEN])  # past 64 bits: OverflowError in SQLite
@example(path=b"/-/refunds", params=[(b"before", b"%C2%B2")], auth=[TOKEN])  # "²".isdigit(), but int("²") fails
@example(path=b"/-/refunds", params=[(b"limit", b"%EF%BC%91")], auth=[TOKEN])  # full-width 1 was taken as 1
@example(path=b"/-/stats", params=[], auth=[(b"Authorization", b"Bearer \xff\xfe")])  # .encode() of a surrogate
def test_reads(app: Background, logs: pytest.LogCaptureFixture, path: bytes, params: list[tuple[bytes, bytes]],
               auth: list[tuple[bytes, bytes]]) -> None:
    target = path + (b"?" + b"&".join(name + b"=" + value for name, value in params) if params else b"")
    answer = exchange(app, logs, "operator reads (/-/..., /metrics, /healthz)",
                      request_bytes(b"GET", target, auth, b""))
    if answer.status == 200 and path != b"/metrics":
        assert answer.content_type == "application/json"
        json.loads(answer.body)
    if auth != [TOKEN] and path != b"/healthz":
        assert answer.status in (400, 401)


@fuzz
@given(refund_id=st.one_of(integer_text.map(str.encode), DIGIT_LOOKALIKES.map(
    lambda text: "".join(f"%{b:02X}" for b in text.encode()).encode()), path_piece))
@example(refund_id=b"9" * 5000)  # int(): ValueError past 4300 digits
@example(refund_id=b"%D9%A3")  # Arabic-Indic 3: matched \d and named refund 3
@example(refund_id=b"%0A")  # a newline: no route matched, not even the last (. skips it): aiohttp's plain 404
def test_one_refund(app: Background, logs: pytest.LogCaptureFixture, refund_id: bytes) -> None:
    answer = exchange(app, logs, "operator GET /-/refunds/{id}", request_bytes(b"GET", b"/-/refunds/" + refund_id,
                                                                              [TOKEN], b""))
    assert answer.status in (200, 400, 404)


retry_bodies = st.one_of(
    st.fixed_dictionaries({"refund_ids": st.lists(st.one_of(
        st.integers(-(2**70), 2**70), st.integers(20, 4000).map(lambda n: int("9" * n)), st.floats(),
        st.booleans(), st.text(max_size=5)), max_size=4)}).map(lambda doc: json.dumps(doc).encode()),
    json_value.map(lambda doc: json.dumps(doc).encode()),
    st.integers(900, 200_000).map(lambda n: b'{"refund_ids": ' + b"[" * n + b"]" * n + b"}"),
    st.binary(max_size=100),
    st.sampled_from([b"", b"{", b"NaN", b'{"refund_ids": "\\ud800"}', b'{"refund_ids": [1e400]}']),
)


@fuzz
@given(body=retry_bodies, auth=authorization, kind=st.sampled_from([b"application/json", b"text/plain", b"\xff"]),
       extra=hostile_headers)
@example(body=b'{"refund_ids": [99999999999999999999999]}', auth=[TOKEN], kind=b"application/json", extra=[])
@example(body=b"[" * 100_000, auth=[TOKEN], kind=b"application/json", extra=[])  # RecursionError
@example(body=b"{}", auth=[TOKEN], kind=b"application/json", extra=[(b"Content-Encoding", b"gzip")])  # not gzip
def test_retry_dead_letters(app: Background, logs: pytest.LogCaptureFixture, body: bytes,
                            auth: list[tuple[bytes, bytes]], kind: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    exchange(app, logs, "operator POST /-/dead-letters/retry",
             request_bytes(b"POST", b"/-/dead-letters/retry", [*auth, (b"Content-Type", kind), *extra], body))


tokens = st.text(st.sampled_from("!#$%&'*+-.^_`|~ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
                 min_size=1, max_size=12).map(str.encode)
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE",
                                     b"CONNECT", b"PRI"]), tokens, raw_value.filter(bool).map(
    lambda raw: raw.replace(b" ", b"")))


@fuzz
@given(method=methods, segments=st.lists(path_piece, max_size=4),
       prefix=st.sampled_from([b"/", b"/-/", b"/webhooks/", b"/alipay/", b"/metrics/", b"//", b"/healthz/"]),
       auth=authorization, extra=hostile_headers, body=st.sampled_from([b"", b"{}", b"\x1f\x8b"]))
@example(method=b"GET", segments=[b"x" * 7000], prefix=b"/", auth=[], extra=[], body=b"")  # a 7 KB path quoted
@example(method=b"GET", segments=[b"\xff"], prefix=b"/nope/", auth=[], extra=[], body=b"")  # not ASCII in the path
@example(method=b"POST", segments=[b"nothing"], prefix=b"/", auth=[], extra=[(b"Content-Encoding", b"gzip")],
         body=b"{}")  # a body no handler reads, which is not gzip: drained by aiohttp after the answer
@example(method=b"GET", segments=[b"healthz"], prefix=b"/", auth=[], extra=[(b"Expect", b"\x80")],
         body=b"")  # aiohttp's default expect handler echoed the header into its 417: UnicodeEncodeError, a 500
@example(method=b"POST", segments=[b"dead-letters", b"retry"], prefix=b"/-/", auth=[TOKEN],
         extra=[(b"Expect", b"100-continue")], body=b"{}")  # the one Expect understood: answered 100, then 200
def test_unknown_routes_and_methods(app: Background, logs: pytest.LogCaptureFixture, method: bytes,
                                    segments: list[bytes], prefix: bytes, auth: list[tuple[bytes, bytes]],
                                    extra: list[tuple[bytes, bytes]], body: bytes) -> None:
    if method == b"CONNECT":  # its target is an authority, not a path
        method = b"GET"
    target = prefix + b"/".join(segments)
    answer = exchange(app, logs, "unknown routes and methods", request_bytes(method, target, auth + extra, body))
    assert answer.status != 200 or method in (b"GET", b"POST")
