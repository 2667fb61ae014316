"""With `server.admin_token` set, the operator's endpoints need it as a Bearer header; webhooks and health checks
do not. Without it, nothing operator-facing is served at all (closed by default)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from refund_adapter.config import parse_config
from refund_adapter.testing import local_config
from refund_adapter.web.access import safe_next
from refund_adapter.web.app import create_app

TOKEN = "s3cret-admin-token"
OPERATOR_PATHS = ("/admin/", "/admin/login", "/admin/static/admin.css", "/-/refunds", "/-/stats", "/-/plugins",
                  "/metrics")


def config_with(tmp_path: Path, **server: Any) -> Any:
    raw = local_config(tmp_path / "r.db", 1, partner="2088101122136241", md5_key="k",
                       gateway_url="http://127.0.0.1:1/gateway.do", platforms={}, server=server)
    return parse_config(raw, env={})


async def test_operator_endpoints_need_the_bearer_token(tmp_path: Path, aiohttp_client: Any) -> None:
    config = config_with(tmp_path, admin_token=TOKEN)
    assert TOKEN not in repr(config)
    client = await aiohttp_client(create_app(config, run_engine=False))
    for path in ("/-/refunds", "/-/stats", "/metrics"):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}, {"Cookie": f"ra_session={TOKEN}"}):
            refused = await client.get(path, headers=headers)
            assert refused.status == 401, (path, headers)
            assert (await refused.json())["type"].endswith("admin-token-required")
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        allowed = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status == 200, path
        assert (await client.get(path, headers={"Authorization": f"bearer {TOKEN}"})).status == 200  # RFC 9110
    assert (await client.get("/healthz")).status == 200
    webhook = await client.post("/webhooks/generic/s1", data=b"{}")
    assert webhook.status == 404  # no generic platform configured: routed as usual, no token asked


async def test_without_a_token_nothing_operator_facing_is_served(
    tmp_path: Path, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = await aiohttp_client(create_app(config_with(tmp_path, admin_token=""), run_engine=False))
    for path in OPERATOR_PATHS:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 404, path
            assert (await resp.json())["type"].endswith("not-found")
    resp = await client.post("/admin/login", data={"token": ""})
    assert resp.status == 404
    assert (await client.post("/-/dead-letters/retry")).status == 404
    assert (await client.get("/healthz")).status == 200
    (line,) = [r.getMessage() for r in caplog.records if "server.admin_token" in r.getMessage()]
    assert "/admin/" in line and "/-/" in line and "/metrics" in line


@pytest.mark.parametrize(("target", "expected"), [
    ("/admin/refunds?state=failed", "/admin/refunds?state=failed"),
    ("/admin/", "/admin/"),
    (None, "/admin/"),
    ("https://evil.example/admin/", "/admin/"),
    ("//evil.example/admin/", "/admin/"),
    ("/\\evil.example", "/admin/"),
    ("/admin//evil", "/admin/"),
    ("/metrics", "/admin/"),
    ("javascript:alert(1)", "/admin/"),
    ("/admin/" + "x" * 3000, "/admin/"),
])
def test_next_only_goes_to_a_page_of_the_dashboard(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
