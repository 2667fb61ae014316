"""The operator's access with a token set: the login session, its expiry and signature, CSRF on every form, the
slowed-down failed login, Bearer only for the JSON API, and /metrics on its own address. Every state-changing
route of the app is found from the router, so a route added later is covered without touching this file."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from refund_adapter.config import parse_config
from refund_adapter.models import RefundRequest
from refund_adapter.testing import (
    ADMIN_HEADERS,
    TEST_ADMIN_TOKEN,
    free_port,
    local_config,
    metric_samples,
    serve,
)
from refund_adapter.web.access import (
    SESSION_COOKIE,
    SESSION_KEY_INFO,
    SESSION_SECONDS,
    Access,
    LoginThrottle,
    session_key,
)
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ACCESS, ENGINE

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_POSTS = {"/admin/login"}  # has its own CSRF check (a double-submit cookie): there is no session yet


def raw_config(tmp_path: Path, port: int = 1, **sections: Any) -> dict[str, Any]:
    return local_config(tmp_path / "r.db", port, partner="2088101122136241", md5_key="k" * 32,
                        gateway_url="http://127.0.0.1:9/gateway.do", platforms={}, **sections)


async def browser_like(app: Any, aiohttp_server: Any, aiohttp_client: Any) -> Any:
    """A test client whose cookie jar, like a browser's, sends `Secure` cookies to http://127.0.0.1."""
    server = await aiohttp_server(app)
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=server.make_url("/"))
    return await aiohttp_client(server, cookie_jar=jar)


@pytest.fixture
async def client(tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> Any:
    app = create_app(parse_config(raw_config(tmp_path), env={}), run_engine=False)
    return await browser_like(app, aiohttp_server, aiohttp_client)


async def login(client: Any, token: str = TEST_ADMIN_TOKEN) -> aiohttp.ClientResponse:
    form = await client.get("/admin/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await form.text())
    assert csrf is not None
    return await client.post("/admin/login", data={"csrf_token": csrf.group(1), "token": token, "next": "/admin/"},
                             allow_redirects=False)


def state_changing_paths(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the app that may change something, with a made-up id where the path has one."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path")
        if route.method in STATE_CHANGING and template and not template.startswith(("/webhooks/", "/alipay/")):
            found.append((route.method, re.sub(r"\{[^}]+\}", "1", template)))
    return found


async def snapshot(app: Any) -> Any:
    store = app[ENGINE].store
    return await store.counts(), [(r.id, r.state, r.report_state, r.review) for r in await store.list_refunds()]


async def test_login_sets_a_signed_expiring_secure_session(client: Any) -> None:
    resp = await login(client)
    assert (resp.status, resp.headers["Location"]) == (303, "/admin/")
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (cookie["path"], cookie["max-age"]) == ("/admin", str(SESSION_SECONDS))
    assert TEST_ADMIN_TOKEN not in cookie.value
    assert (await client.get("/admin/", allow_redirects=False)).status == 200
    # the session is for pages only: the JSON API wants the Bearer header, even from a logged-in browser
    assert (await client.get("/-/stats")).status == 401


async def test_a_forged_or_expired_session_is_sent_to_the_login_page() -> None:
    now = [1_800_000_000.0]
    access = Access("token", clock=lambda: now[0])
    session = access.new_session()
    expires, nonce, mac = session.split(".")
    forged = [f"{int(expires) + 999}.{nonce}.{mac}", f"{expires}.{nonce}.{'0' * len(mac)}", "", "a.b", session + "x",
              Access("another-token", clock=lambda: now[0]).new_session()]

    class Request:
        def __init__(self, value: str) -> None:
            self.cookies = {SESSION_COOKIE: value}

    assert access.session(Request(session)) == session  # type: ignore[arg-type]
    assert [access.session(Request(value)) for value in forged] == [None] * len(forged)  # type: ignore[arg-type]
    now[0] += SESSION_SECONDS
    assert access.session(Request(session)) is None  # type: ignore[arg-type]


async def test_pages_without_a_session_redirect_to_the_login_page_with_a_local_next(client: Any) -> None:
    resp = await client.get("/admin", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (308, "/admin/")
    resp = await client.get("/admin/?x=1", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/admin/login?next=/admin/?x%3D1")
    page = await client.get("/admin/login?next=https://evil.example/")
    assert 'name="next" value="/admin/"' in await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["Cache-Control"] == "no-store"


async def test_a_failed_login_is_logged_without_the_token_and_slowed_down(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    access: Access = client.server.app[ACCESS]
    access.throttle = LoginThrottle(base=0.01, cap=0.04)
    wrong = "wrong-token-that-must-not-be-logged"
    for _ in range(4):
        resp = await login(client, wrong)
        assert resp.status == 401 and SESSION_COOKIE not in resp.cookies
        assert "not the right one" in await resp.text()
    assert access.throttle.failures("127.0.0.1") == 4
    refusals = [r.getMessage() for r in caplog.records if "login refused" in r.getMessage()]
    assert len(refusals) == 4 and all("127.0.0.1" in line for line in refusals)
    assert not any(wrong in r.getMessage() or TEST_ADMIN_TOKEN in r.getMessage() for r in caplog.records)
    assert (await login(client)).status == 303
    assert access.throttle.failures("127.0.0.1") == 0  # a success clears the count


@pytest.mark.parametrize("token", [TEST_ADMIN_TOKEN, "", "令牌-" * 40])
def test_the_session_key_is_cryptographys_hkdf_sha256(token: str) -> None:
    """Written with the standard library, the key is still HKDF's: sessions made before it stay valid."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SESSION_KEY_INFO).derive(token.encode())
    assert session_key(token) == expected


def test_the_login_throttle_doubles_up_to_its_cap_and_forgets() -> None:
    now = [0.0]
    throttle = LoginThrottle(base=0.25, cap=2.0, forget_after=60, max_clients=2, clock=lambda: now[0])
    assert [throttle.fail("a") for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert throttle.fail("b") == 0.25  # per client
    throttle.fail("c")  # a third client: the oldest is forgotten, memory stays bounded
    assert throttle.failures("a") == 0 and throttle.failures("b") == 1
    now[0] += 61
    assert throttle.fail("b") == 0.25


async def test_every_action_without_the_token_or_the_csrf_token_is_refused_and_changes_nothing(
    tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any
) -> None:
    app = create_app(parse_config(raw_config(tmp_path), env={}), run_engine=False)
    client = await browser_like(app, aiohttp_server, aiohttp_client)
    actions = [(m, p) for m, p in state_changing_paths(app) if p not in OPEN_POSTS]
    assert ("POST", "/-/dead-letters/retry") in actions and ("POST", "/admin/logout") in actions
    store = app[ENGINE].store
    (accepted,) = await store.accept([RefundRequest(
        platform="generic", shop="s1", platform_refund_id="r1", order_id="o1", trade_no="2026120722000000000001",
        amount=Decimal("10.00"), currency="CNY", reason="damaged", alipay_account="main")], 1_800_000_000.0)
    before = await snapshot(app)
    assert [row[0] for row in before[1]] == [accepted.refund.id]
    await login(client)
    page = await (await client.get("/admin/")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    for method, path in actions:
        if path.startswith("/-/"):  # the JSON API: Bearer only; a session cookie with its CSRF token does not do
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TEST_ADMIN_TOKEN}):
                resp = await client.request(method, path, headers=headers, data={"csrf_token": csrf.group(1)})
                assert resp.status == 401, (method, path, headers)
        else:  # a dashboard form: the session and its CSRF token; the Bearer header does not do
            for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
                resp = await client.request(method, path, data=data, headers=ADMIN_HEADERS)
                assert resp.status == 403, (method, path, data)
                assert (await resp.json())["type"].endswith("csrf-token-invalid")
    assert (await client.get("/admin/", allow_redirects=False)).status == 200  # the refused logout did nothing
    client.session.cookie_jar.clear()
    for method, path in actions:
        if path.startswith("/admin/"):  # no session: refused even with a once valid CSRF token
            resp = await client.request(method, path, data={"csrf_token": csrf.group(1)})
            assert resp.status == 403, (method, path)
    assert await snapshot(app) == before


async def test_metrics_listen_serves_only_metrics_without_the_token(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    raw = raw_config(tmp_path, port, metrics={"listen": f"127.0.0.1:{metrics_port}"})
    app = create_app(parse_config(raw, env={}), run_engine=False)
    async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
        exporter = f"http://127.0.0.1:{metrics_port}"
        async with http.get(exporter + "/metrics") as resp:  # no Authorization header
            assert resp.status == 200 and "refund_adapter_refunds" in await resp.text()
        for path in ("/-/stats", "/admin/", "/healthz", "/webhooks/generic/s1"):
            async with http.get(exporter + path) as resp:
                assert resp.status == 404, path
        async with http.get(url + "/metrics") as resp:
            assert resp.status == 401  # the main address still wants the token
        assert "refund_adapter_refunds" in await metric_samples(http, url)
    with pytest.raises(aiohttp.ClientConnectionError):  # the second site stops with the app
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{metrics_port}/metrics"):
            pass


async def test_without_a_token_metrics_listen_is_the_only_way_to_metrics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    port, metrics_port = free_port(), free_port()
    raw = raw_config(tmp_path, port, metrics={"listen": f"127.0.0.1:{metrics_port}"})
    raw["server"]["admin_token"] = ""
    app = create_app(parse_config(raw, env={}), run_engine=False)
    async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            assert resp.status == 200
        async with http.get(url + "/metrics") as resp:
            assert resp.status == 404
    assert any(f"/metrics is served on 127.0.0.1:{metrics_port}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("headers", "warned"), [
    ({}, False),  # 127.0.0.1: browsers keep Secure cookies from a loopback origin
    ({"Host": "localhost:8080"}, False),
    ({"Host": "[::1]:8080"}, False),
    ({"Host": "refunds.example.com"}, True),
    ({"Host": "10.0.0.5:8080"}, True),
    ({"Host": "refunds.example.com", "X-Forwarded-Proto": "https"}, False),  # TLS ends at a proxy
])
async def test_the_login_page_warns_when_the_browser_would_drop_the_session(
    client: Any, headers: dict[str, str], warned: bool
) -> None:
    page = await (await client.get("/admin/login", headers=headers)).text()
    assert ("will not keep the login" in page) is warned
