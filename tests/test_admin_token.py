"""With `server.admin_token` set, the operator's endpoints need it; webhooks and health checks do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refund_adapter.config import parse_config
from refund_adapter.testing import local_config
from refund_adapter.web.app import create_app

TOKEN = "s3cret-admin-token"


async def test_operator_endpoints_need_the_bearer_token(tmp_path: Path, aiohttp_client: Any) -> None:
    raw = local_config(tmp_path / "r.db", 1, partner="2088101122136241", md5_key="k",
                       gateway_url="http://127.0.0.1:1/gateway.do", platforms={}, server={"admin_token": TOKEN})
    config = parse_config(raw, env={})
    assert TOKEN not in repr(config)
    client = await aiohttp_client(create_app(config, run_engine=False))
    for path in ("/-/refunds", "/-/stats", "/metrics"):
        refused = await client.get(path)
        assert refused.status == 401, path
        assert (await refused.json())["type"].endswith("admin-token-required")
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401, path
        allowed = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status == 200, path
    assert (await client.get("/healthz")).status == 200
    webhook = await client.post("/webhooks/generic/s1", data=b"{}")
    assert webhook.status == 404  # no generic platform configured: routed as usual, no token asked
