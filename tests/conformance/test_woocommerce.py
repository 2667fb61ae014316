"""The WooCommerce plugin against the kit's conformance suite: order webhooks in, order notes and metadata out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refund_adapter.testing import Call, ConformanceRun, FakePlatform, PlatformConformance, SampleRefund, Webhook

from ..woocommerce.fake_woocommerce import API, CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET, FakeWooCommerce

FIRST_ORDER = 700


def _fake(run: ConformanceRun) -> FakeWooCommerce:
    assert isinstance(run.fake, FakeWooCommerce)
    return run.fake


class TestWooCommerceConformance(PlatformConformance):
    platform = "woocommerce"

    def fake_platform(self) -> FakeWooCommerce:
        return FakeWooCommerce()

    def settings(self, fake: FakePlatform) -> Mapping[str, Any]:
        return {"shops": [{"url": fake.url, "webhook_secret": WEBHOOK_SECRET, "consumer_key": CONSUMER_KEY,
                           "consumer_secret": CONSUMER_SECRET, "alipay_gateway_ids": ["alipay"],
                           "alipay_account": "main", "refunds_since": "2020-01-01T00:00:00+00:00",
                           "poll_interval_seconds": 3600}]}  # the refunds come by webhook, not by the poll

    async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook:
        fake, order_id = _fake(run), FIRST_ORDER + refund.number
        fake.add_order(order_id, trade_no=refund.trade_no, total=str(refund.paid))
        fake.add_refund(order_id, str(refund.amount))
        return Webhook(*fake.delivery(order_id))

    def signed(self, run: ConformanceRun, body: bytes) -> Webhook:
        return Webhook(*_fake(run).delivery(0, body=body))

    def is_report(self, call: Call) -> bool:
        return call.method in ("POST", "PUT") and call.path.startswith(f"{API}/orders/")

    def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None:
        order = _fake(run).orders[FIRST_ORDER + refund.number]
        refund_id = order["refunds"][0]["id"]
        order["meta_data"].append({"id": 1, "key": f"_alipay_refund_{refund_id}", "value": {"status": "succeeded"}})
