"""aiohttp's own errors are problems like ours: no route, a route under other methods, a body too large."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refund_adapter.config import parse_config
from refund_adapter.testing import ADMIN_HEADERS, local_config
from refund_adapter.web.app import create_app
from refund_adapter.web.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX

MAX_BODY = 4096


async def client_for(tmp_path: Path, aiohttp_client: Any) -> Any:
    raw = local_config(tmp_path / "r.db", 1, partner="2088101122136241", md5_key="k",
                       gateway_url="http://127.0.0.1:1/gateway.do", platforms={}, server={"max_body_bytes": MAX_BODY})
    return await aiohttp_client(create_app(parse_config(raw, env={}), run_engine=False))


async def test_no_route_a_wrong_method_and_a_large_body_are_problems(tmp_path: Path, aiohttp_client: Any) -> None:
    client = await client_for(tmp_path, aiohttp_client)
    cases = {
        ("GET", "/nowhere"): (404, "not-found"),
        ("GET", "/-/refunds/abc"): (404, "not-found"),
        ("PUT", "/alipay/notify"): (405, "method-not-allowed"),
        ("DELETE", "/-/stats"): (405, "method-not-allowed"),
        ("POST", "/alipay/notify"): (413, "body-too-large"),
    }
    for (method, path), (status, slug) in cases.items():
        resp = await client.request(method, path, data=b"x" * (MAX_BODY + 1) if status == 413 else None)
        assert resp.status == status, (method, path)
        assert resp.content_type == PROBLEM_CONTENT_TYPE
        assert (await resp.json())["type"] == PROBLEM_TYPE_PREFIX + slug
        if status == 405:
            assert method not in resp.headers["Allow"] and "GET" in resp.headers["Allow"]
    notify = await client.request("PUT", "/alipay/notify")
    assert set(notify.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_a_bad_query_parameter_is_a_problem(tmp_path: Path, aiohttp_client: Any) -> None:
    client = await client_for(tmp_path, aiohttp_client)
    resp = await client.get("/-/refunds?limit=-1", headers=ADMIN_HEADERS)
    assert resp.status == 400
    assert (await resp.json())["type"] == PROBLEM_TYPE_PREFIX + "invalid-parameter"
