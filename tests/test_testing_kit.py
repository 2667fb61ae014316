"""The testing kit itself: the fake-platform base, the waits, and the fixtures its pytest plugin registers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from refund_adapter_generic.shop import signed_generic_webhook

from refund_adapter.models import RefundState, ReportState
from refund_adapter.testing import (
    AdapterLoop,
    Call,
    FakePlatform,
    Webhook,
    post_webhook,
    refunded_details,
    seed_trade,
    wait_for_final_state,
    wait_for_report_state,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TRADE = "2026120722000000000000000042"


class Echo(FakePlatform):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{name}", self._echo)
        app.router.add_get("/gone", self._gone)

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"], "body": (await request.read()).decode()})

    async def _gone(self, request: web.Request) -> web.Response:
        raise web.HTTPGone()


async def test_a_fake_platform_records_each_request_and_answers_what_it_is_told() -> None:
    fake = Echo()
    on_reports: Callable[[Call], bool] = lambda call: call.path == "/api/report"  # noqa: E731
    fake.answer_next(429, 2, when=on_reports, headers={"Retry-After": "7"}, body="slow down")
    fake.answer_next(503, json={"error": "down"})
    async with fake.running() as url, aiohttp.ClientSession() as http:
        assert fake.url == url
        answers = []
        for path in ("/api/report", "/api/other", "/api/report", "/api/report", "/api/other", "/gone", "/nowhere"):
            async with http.post(url + path, data=b"x") if path.startswith("/api") else http.get(url + path) as resp:
                answers.append((resp.status, resp.headers.get("Retry-After"), await resp.text()))
    assert answers == [
        (429, "7", "slow down"),
        (503, None, '{"error": "down"}'),  # the first script selects reports only: the second takes this one
        (429, "7", "slow down"),
        (200, None, '{"name": "report", "body": "x"}'),
        (200, None, '{"name": "other", "body": "x"}'),
        (410, None, "410: Gone"),
        (404, None, "404: Not Found"),
    ]
    assert fake.answered(on_reports) == [429, 429, 200]
    assert [(call.method, call.path, call.body) for call in fake.received[:2]] == [
        ("POST", "/api/report", b"x"), ("POST", "/api/other", b"x")]
    assert fake.url == ""


async def test_a_wait_for_a_refund_never_stored_names_it(serve_adapter: Any) -> None:
    async with serve_adapter({}) as adapter:
        with pytest.raises(TimeoutError, match=r"a final state of refund \('generic', 's', 'r'\).*never stored"):
            await wait_for_final_state(adapter.store, ("generic", "s", "r"), within=0.2)


async def test_the_fixtures_run_a_refund_through_the_sandbox_to_a_platform(
    serve_adapter: Callable[..., contextlib.AbstractAsyncContextManager[AdapterLoop]], running_sandbox: Any
) -> None:
    shop = Echo()
    seed_trade(running_sandbox, TRADE, Decimal("50.00"))
    async with shop.running() as url:
        section = {"shops": [{"id": "s-1", "secret": SECRET, "callback_url": f"{url}/api/callback",
                              "alipay_account": "main"}]}
        async with serve_adapter({"generic": section}) as adapter:
            payload = {"refund_id": "r-1", "order_id": "o-1", "trade_no": TRADE, "amount": "20.00",
                       "currency": "CNY", "reason": "kit"}
            headers, body = signed_generic_webhook(SECRET, payload, "msg-1")
            status, _ = await post_webhook(adapter.http, adapter.url, "generic", Webhook(headers, body, "s-1"))
            assert status == 200
            refund = await wait_for_final_state(adapter.store, ("generic", "s-1", "r-1"))
            assert refund.state == RefundState.SUCCEEDED
            reported = await wait_for_report_state(adapter.store, ("generic", "s-1", "r-1"))
            assert reported.report_state == ReportState.DELIVERED
    assert refunded_details(running_sandbox, TRADE) == 1
    assert [(call.path, call.json()["status"]) for call in shop.received] == [("/api/callback", "succeeded")]
