"""Inbound: refunds/create webhooks (verified, queued, answered without calling Shopify) and refund sessions."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from refund_adapter_shopify import Payment
from refund_adapter_shopify.adapter import ShopifyPlatform

from refund_adapter import InboundWebhook, RefundRequest, WebhookRejected
from refund_adapter.platform import PluginData

from .conftest import make_platform, queued
from .fake_shopify import DOMAIN, TRADE_NO, FakeShopify, session_body, webhook_headers

PAYMENT = Payment(DOMAIN, "e6dXWOq7-_NSjXFeCjQ9jsGZ", TRADE_NO, Decimal("100.00"), "450789469")


def refund_webhook(payload: dict[str, Any] | bytes, **header_options: Any) -> InboundWebhook:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InboundWebhook("shopify", "", CIMultiDict(webhook_headers(body, **header_options)), {}, body)


def session_webhook(body: dict[str, Any] | bytes, *, verified: str | None = "SUCCESS",
                    domain: str = DOMAIN) -> InboundWebhook:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = CIMultiDict({"Content-Type": "application/json", "Shopify-Shop-Domain": domain,
                           "Shopify-Request-Id": "6e1a7d76-d0f9-4a83-9f5d-cc2de0b6e1c4",
                           "Shopify-Api-Version": "2025-07"})
    if verified is not None:
        headers["X-Client-Verify"] = verified
    return InboundWebhook("shopify", "refund-session", headers, {}, raw)


async def rejection(platform: ShopifyPlatform, webhook: InboundWebhook) -> tuple[int, str]:
    with pytest.raises(WebhookRejected) as caught:
        await platform.receive(webhook)
    return caught.value.status, caught.value.type


# --- refunds/create --------------------------------------------------------------------------------------


async def test_a_paying_refund_is_queued_once_and_answered_without_calling_shopify(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData
) -> None:
    payload = fake.add_refund(fake.add_order(450789469), 929361464, "30.00")
    for _ in range(3):  # Shopify's retries and a second subscription deliver the same refund again
        accepted = await platform.receive(refund_webhook(payload))
        assert (accepted.status, accepted.requests) == (200, ())
        assert accepted.reconcile_soon  # the core fetches it from the Admin API right after this answer
    assert await queued(data) == ["gid://shopify/Refund/929361464"]
    assert fake.calls == []


async def test_a_webhook_signed_with_any_configured_secret_is_accepted(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData
) -> None:
    payload = fake.add_refund(fake.add_order(1), 2, "30.00")
    await platform.receive(refund_webhook(payload, secret="old-secret"))  # before the rotation is complete
    assert await queued(data) == ["gid://shopify/Refund/2"]


@pytest.mark.parametrize(
    ("transactions", "is_queued"),
    [
        pytest.param([], False, id="restock-only"),
        pytest.param([{"kind": "refund", "status": "failure", "currency": "CNY"}], False, id="failed-refund"),
        pytest.param([{"kind": "refund", "status": "error", "currency": "USD"}], False, id="error-refund"),
        pytest.param([{"kind": "sale", "status": "success", "currency": "CNY"}], False, id="non-refund"),
        pytest.param([{"kind": "refund", "status": "pending", "currency": "CNY"}], True, id="pending"),
    ],
)
async def test_status_policy(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData, transactions: list[dict[str, Any]],
    is_queued: bool,
) -> None:
    payload = fake.add_refund(fake.add_order(1), 77) | {"transactions": transactions}
    accepted = await platform.receive(refund_webhook(payload))
    assert (accepted.status, accepted.requests) == (200, ())
    assert await queued(data) == (["gid://shopify/Refund/77"] if is_queued else [])
    assert accepted.reconcile_soon is is_queued  # nothing queued, no round to ask for


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({"secret": "another-app's-secret"}, (401, "invalid-signature"), id="wrong-hmac"),
        pytest.param({"domain": "other.myshopify.com"}, (404, "unknown-shop"), id="unknown-shop"),
        pytest.param({"topic": "orders/create"}, (400, "unsupported-topic"), id="other-topic"),
    ],
)
async def test_refused_webhooks_store_nothing(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData, options: dict[str, str], expected: tuple[int, str]
) -> None:
    payload = fake.add_refund(fake.add_order(1), 2, "30.00")
    assert await rejection(platform, refund_webhook(payload, **options)) == expected
    assert await queued(data) == []


async def test_a_body_changed_after_signing_is_refused(platform: ShopifyPlatform, fake: FakeShopify) -> None:
    hook = refund_webhook(fake.add_refund(fake.add_order(1), 2, "30.00"))
    tampered = InboundWebhook("shopify", "", hook.headers, {}, hook.body.replace(b"30.00", b"90.00"))
    assert await rejection(platform, tampered) == (401, "invalid-signature")


@pytest.mark.parametrize("header", ["", "not base64!", "c2hvcnQ="])
async def test_a_malformed_hmac_header_is_refused(platform: ShopifyPlatform, fake: FakeShopify, header: str) -> None:
    hook = refund_webhook(fake.add_refund(fake.add_order(1), 2, "30.00"))
    headers = CIMultiDict(hook.headers)
    headers["X-Shopify-Hmac-Sha256"] = header
    forged = InboundWebhook("shopify", "", headers, {}, hook.body)
    assert await rejection(platform, forged) == (401, "invalid-signature")


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b"\xff", b"[1]", b'{"id": NaN}', b'{"id": "929361464"}', b'{"id": 1, "transactions": {}}',
     b'{"id": 1, "transactions": [1]}'],
)
async def test_malformed_json_is_400(platform: ShopifyPlatform, data: PluginData, body: bytes) -> None:
    assert await rejection(platform, refund_webhook(body)) == (400, "malformed-body")
    assert await queued(data) == []


async def test_a_refund_in_another_currency_is_queued_like_any_other(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData
) -> None:
    """The core stores it rejected once fetched: a 422 would have Shopify retry it for two days."""
    payload = fake.add_refund(fake.add_order(1), 2, "30.00")
    payload["transactions"][0]["currency"] = "USD"
    assert (await platform.receive(refund_webhook(payload))).status == 200
    assert await queued(data) == ["gid://shopify/Refund/2"]


async def test_a_payments_app_shop_ignores_refunds_create(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    platform = make_platform(fake, http, data, mode="payments_app")
    accepted = await platform.receive(refund_webhook(fake.add_refund(fake.add_order(1), 2, "30.00")))
    assert (accepted.status, accepted.requests, accepted.reconcile_soon) == (200, (), False)
    assert await queued(data) == []


async def test_an_unknown_subpath_is_404(platform: ShopifyPlatform) -> None:
    hook = InboundWebhook("shopify", "refunds", CIMultiDict(), {}, b"{}")
    assert await rejection(platform, hook) == (404, "unknown-endpoint")


# --- refund sessions -------------------------------------------------------------------------------------


@pytest.fixture
async def payments_app(fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData) -> ShopifyPlatform:
    platform = make_platform(fake, http, data, mode="payments_app", client_secrets=[])
    await platform.payments.record([PAYMENT])
    return platform


async def test_a_refund_session_becomes_a_request_answered_201_empty(payments_app: ShopifyPlatform) -> None:
    accepted = await payments_app.receive(session_webhook(session_body("2sl4WR9jF82W0vQVg8fjux9S", PAYMENT.payment_id)))
    assert (accepted.status, accepted.body) == (201, b"")
    assert accepted.requests == (
        RefundRequest(
            platform="shopify", shop=DOMAIN, platform_refund_id="2sl4WR9jF82W0vQVg8fjux9S", order_id="450789469",
            trade_no=TRADE_NO, amount=Decimal("30.00"), currency="CNY", reason="", alipay_account="main",
            paid_amount=Decimal("100.00"),
            context={"mode": "payments_app", "session_gid": "gid://shopify/RefundSession/2sl4WR9jF82W0vQVg8fjux9S",
                     "payment_id": PAYMENT.payment_id},
        ),
    )


async def test_a_session_for_an_unrecorded_payment_is_a_request_rejected_as_unknown_payment(
    payments_app: ShopifyPlatform,
) -> None:
    accepted = await payments_app.receive(session_webhook(session_body("s1", "unknown-payment")))
    (request,) = accepted.requests
    assert (accepted.status, request.rejection, request.trade_no) == (201, "UNKNOWN_PAYMENT", "")
    assert request.context["session_gid"] == "gid://shopify/RefundSession/s1"  # the report rejects the session


@pytest.mark.parametrize(("amount", "currency"), [("30.005", "CNY"), ("30.00", "CAD")])
async def test_a_session_that_cannot_be_paid_is_handed_over_as_sent(
    payments_app: ShopifyPlatform, amount: str, currency: str
) -> None:
    body = session_body("s1", PAYMENT.payment_id, amount=amount, currency=currency)
    (request,) = (await payments_app.receive(session_webhook(body))).requests
    assert (str(request.amount), request.currency) == (amount, currency)  # the core rejects it, with the reason


@pytest.mark.parametrize("verified", [None, "FAILED:certificate has expired", "NONE"])
async def test_a_session_without_a_verified_client_certificate_is_401(
    payments_app: ShopifyPlatform, verified: str | None
) -> None:
    hook = session_webhook(session_body("s1", PAYMENT.payment_id), verified=verified)
    assert await rejection(payments_app, hook) == (401, "client-certificate-required")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"{", (400, "malformed-body"), id="not-json"),
        pytest.param(session_body("s1", PAYMENT.payment_id) | {"gid": None}, (400, "malformed-body"), id="no-gid"),
        pytest.param(session_body("s1", PAYMENT.payment_id) | {"amount": 30}, (400, "malformed-body"), id="number"),
        pytest.param(session_body("s1", PAYMENT.payment_id, amount="1e3"), (422, "invalid-amount"), id="exponent"),
        pytest.param(session_body("s1", PAYMENT.payment_id, amount="0.00"), (422, "invalid-amount"), id="zero"),
    ],
)
async def test_malformed_sessions_are_refused(
    payments_app: ShopifyPlatform, body: dict[str, Any] | bytes, expected: tuple[int, str]
) -> None:
    assert await rejection(payments_app, session_webhook(body)) == expected


async def test_a_session_for_a_webhook_mode_shop_or_an_unknown_shop_is_refused(platform: ShopifyPlatform) -> None:
    assert await rejection(platform, session_webhook(session_body("s1", "p"))) == (409, "not-a-payments-app-shop")
    unknown = session_webhook(session_body("s1", "p"), domain="nope.myshopify.com")
    assert await rejection(platform, unknown) == (404, "unknown-shop")
