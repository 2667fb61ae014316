"""The channel's own promises, against gateways on real loopback ports: at most `max_concurrency` calls in
flight per account, and a rate-limited account pausing every call before sending the same again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.channels.base import Verdict
from refund_adapter.channels.openapi.channel import Backoff, OpenApiChannel, Order
from refund_adapter.channels.openapi.messages import METHOD_REFUND
from refund_adapter.channels.openapi.response import render_body, render_node, response_node
from refund_adapter.channels.openapi.signing import Signer
from refund_adapter.config import parse_config
from refund_adapter.models import Batch, BatchDetail, BatchState
from refund_adapter.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import serve

from .conftest import private_pem, public_pem

DEADLINE = 5.0


def _account(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey, gateway_url: str, limit: int) -> Any:
    raw = {"server": {"public_url": "https://r.example.com"}, "alipay": {"accounts": {"m": {
        "channel": "openapi", "app_id": "2021000000000001", "private_key": private_pem(app_key),
        "alipay_public_key": public_pem(alipay_key), "gateway_url": gateway_url, "max_concurrency": limit}}}}
    return parse_config(raw, env={}).alipay.accounts["m"]


def _orders(count: int) -> list[Order]:
    return [Order(i, f"202612072200140{i:04d}", Decimal("1.00"), "", f"RA{i}") for i in range(count)]


async def test_calls_in_flight_never_exceed_max_concurrency(
    app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    """The gateway holds each call until two are in flight at once: with a bound of 2 the peak is exactly 2."""
    in_flight, peak, pair = [0], [0], asyncio.Event()

    async def gateway(request: web.Request) -> web.Response:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        if in_flight[0] == 2:
            pair.set()
        async with asyncio.timeout(DEADLINE):
            await pair.wait()
        in_flight[0] -= 1
        return web.Response(text='{"alipay_trade_refund_response":{"code":"20000","msg":"Service Unavailable"}}')

    app = web.Application()
    app.router.add_post("/gateway.do", gateway)
    async with serve(app) as url, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http:
        channel = OpenApiChannel.create(_account(app_key, alipay_key, url + "/gateway.do", 2), http, http.timeout)
        settled = await channel.settle_all(_orders(7))
    assert peak == [2]
    assert [s.verdict for s in settled] == [None] * 7  # 20000: unknown, for the query to settle


async def test_a_rate_limited_account_backs_off_and_sends_the_same_call_again(
    app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    seen: list[dict[str, str]] = []

    async def gateway(request: web.Request) -> web.Response:
        seen.append(dict(await request.post()))  # type: ignore[arg-type]
        if len(seen) <= 2:
            return web.Response(status=429 if len(seen) == 1 else 200, text=render_body(
                response_node(METHOD_REFUND), render_node({"code": "40005", "sub_code": "isv.app-call-limited"}), None))
        text = render_node({"code": "10000", "msg": "Success", "trade_no": "2026120722001400000", "fund_change": "Y"})
        sign = Signer("RSA2", alipay_key).sign_text(text)
        return web.Response(text=render_body(response_node(METHOD_REFUND), text, sign))

    app = web.Application()
    app.router.add_post("/gateway.do", gateway)
    clock = [0.0]
    backoff = Backoff(base_seconds=0.01, clock=lambda: clock[0])
    async with serve(app) as url, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http:
        channel = OpenApiChannel.create(_account(app_key, alipay_key, url + "/gateway.do", 4), http, http.timeout,
                                        backoff=backoff)
        settled = await channel.settle(_orders(1)[0])
    assert settled.verdict is not None and settled.verdict.code == "SUCCESS"
    assert len(seen) == 3  # 429, then 40005, then the answer
    assert {s["biz_content"] for s in seen} == {seen[0]["biz_content"]}  # the same out_request_no each time
    assert len(settled.requests) == 3 and all("sign" not in r for r in settled.requests)


async def test_backoff_doubles_and_is_shared_by_the_account() -> None:
    clock = [100.0]
    backoff = Backoff(base_seconds=1.0, max_seconds=3.0, clock=lambda: clock[0])
    backoff.limited(1)
    assert backoff.until == 101.0
    backoff.limited(3)  # 4 s, capped at 3
    assert backoff.until == 103.0
    backoff.limited(1)  # a shorter pause never shortens the one in force
    assert backoff.until == 103.0


async def test_a_settled_refund_is_never_sent_or_asked_about_again(
    app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    """A group holding a refund that failed for good and one left unknown: the query settles the unknown one and
    never touches the failed one (sent again after the seller topped up, it would be paid after the platform
    was told it failed)."""
    config = SandboxConfig(partner="2088101122136241", alipay_private_key=alipay_key,
                           merchant_public_key=app_key.public_key(), app_id="2021000000000001",
                           trades=[TradeSeed("2026120722001400001", Decimal("50.00")),
                                   TradeSeed("2026120722001400002", Decimal("50.00"))])
    failed = BatchDetail(1, "2026120722001400001", Decimal("5.00"), "", ("generic", "s", "r1"), settled=True)
    unknown = BatchDetail(2, "2026120722001400002", Decimal("5.00"), "", ("generic", "s", "r2"))
    batch = Batch(1, "m", "openapi-x-1", BatchState.UNKNOWN, (failed, unknown), datetime.now(UTC))
    async with run_sandbox(config) as sandbox, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(DEADLINE)) as http:
        channel = OpenApiChannel.create(_account(app_key, alipay_key, sandbox.openapi_url, 4), http, http.timeout)
        answer = await channel.query(batch, datetime.now(UTC))
        submitted = await channel.submit(batch, datetime.now(UTC))
    assert [(r.trade_no, r.code) for r in answer.results] == [("2026120722001400002", "SUCCESS")]
    assert submitted.verdict is Verdict.ACCEPTED  # a resend after a crash: the unknown one confirmed, fund_change=N
    assert [call.refund.trade_no for call in sandbox.state.openapi_calls] == ["2026120722001400002"] * 2
    assert sandbox.state.ledger.trades["2026120722001400001"].refund_count == 0
    assert sandbox.state.ledger.trades["2026120722001400002"].refund_count == 1
