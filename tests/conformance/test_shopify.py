"""The Shopify plugin against the kit's conformance suite, as a payments app: refund sessions in (Shopify's client
certificate is what authenticates them), sessions resolved or rejected out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from refund_adapter_shopify import Payment, PaymentBook

from refund_adapter.testing import Call, ConformanceRun, FakePlatform, PlatformConformance, SampleRefund, Webhook

from ..shopify.fake_shopify import API_VERSION, DOMAIN, TOKEN, FakeShopify, session_body

CERT_HEADER = "X-Client-Verify"  # set by the TLS terminator once Shopify's client certificate is verified
SESSION_PATH = "refund-session"


def _session_gid(refund: SampleRefund) -> str:
    return f"gid://shopify/RefundSession/s-{refund.number}"


def _fake(run: ConformanceRun) -> FakeShopify:
    assert isinstance(run.fake, FakeShopify)
    return run.fake


class TestShopifyConformance(PlatformConformance):
    platform = "shopify"

    def fake_platform(self) -> FakeShopify:
        return FakeShopify()

    def settings(self, fake: FakePlatform) -> Mapping[str, Any]:
        return {"client_cert_header": CERT_HEADER,
                "shops": [{"domain": DOMAIN, "mode": "payments_app", "client_secrets": [], "access_token": TOKEN,
                           "api_version": API_VERSION, "alipay_account": "main", "api_base_url": fake.url}]}

    async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook:
        payment_id = f"p-{refund.number}"
        await PaymentBook.in_store(run.adapter.store).record(
            [Payment(DOMAIN, payment_id, refund.trade_no, refund.paid, f"o-{refund.number}")])
        _fake(run).sessions[_session_gid(refund)] = "pending"
        body = session_body(f"s-{refund.number}", payment_id, amount=str(refund.amount))
        return self.signed(run, json.dumps(body).encode())

    def signed(self, run: ConformanceRun, body: bytes) -> Webhook:
        headers = {"Content-Type": "application/json", "Shopify-Shop-Domain": DOMAIN, CERT_HEADER: "SUCCESS"}
        return Webhook(headers, body, SESSION_PATH)

    def forged(self, webhook: Webhook, body: bytes) -> Webhook:
        return replace(webhook.without(CERT_HEADER), body=body)  # not through Shopify's mutual TLS

    def is_report(self, call: Call) -> bool:
        return call.path.startswith("/payments_apps/")

    def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None:
        _fake(run).sessions[_session_gid(refund)] = "resolved"
