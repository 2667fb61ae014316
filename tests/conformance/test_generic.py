"""The generic plugin against the kit's conformance suite: Standard Webhooks in, signed result callbacks out."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from refund_adapter_generic import standard_webhooks
from refund_adapter_generic.shop import signed_generic_webhook

from refund_adapter.testing import Call, ConformanceRun, FakePlatform, PlatformConformance, SampleRefund, Webhook

SHOP = "shop-1"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class FakeShop(FakePlatform):
    """A shop's callback endpoint: it checks our signature and takes each result; a result it already holds it
    acknowledges again, as Standard Webhooks asks of a receiver."""

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/callback", self._callback)

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            standard_webhooks.verify(SECRET, request.headers, body, now=time.time())
        except standard_webhooks.WebhookVerificationError:
            return web.Response(status=401)
        result = json.loads(body)
        self.results.setdefault(result["refund_id"], result)
        return web.Response(text="ok")


class TestGenericConformance(PlatformConformance):
    platform = "generic"

    def fake_platform(self) -> FakeShop:
        return FakeShop()

    def settings(self, fake: FakePlatform) -> Mapping[str, Any]:
        return {"shops": [{"id": SHOP, "secret": SECRET, "callback_url": f"{fake.url}/callback",
                           "alipay_account": "main"}]}

    async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook:
        payload = {"refund_id": f"r-{refund.number}", "order_id": f"o-{refund.number}", "trade_no": refund.trade_no,
                   "amount": str(refund.amount), "currency": "CNY", "reason": "conformance",
                   "paid_amount": str(refund.paid)}
        headers, body = signed_generic_webhook(SECRET, payload, f"msg-{refund.number}")
        return Webhook(headers, body, SHOP)

    def signed(self, run: ConformanceRun, body: bytes) -> Webhook:
        return Webhook(standard_webhooks.signed_headers(SECRET, "msg-any", int(time.time()), body), body, SHOP)

    def is_report(self, call: Call) -> bool:
        return call.path == "/callback"

    def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None:
        assert isinstance(run.fake, FakeShop)
        run.fake.results[f"r-{refund.number}"] = {"status": "succeeded"}
