"""Outbound: results written back to the fake shop, and every way Shopify can refuse or delay them."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest
from refund_adapter_shopify.adapter import ShopifyPlatform

from refund_adapter import RefundOutcome, RefundRequest
from refund_adapter.models import DeliveryStatus
from refund_adapter.platform import PluginData

from .conftest import make_platform
from .fake_shopify import DOMAIN, TRADE_NO, FakeShopify

ORDER_GID = "gid://shopify/Order/450789469"
SESSION_GID = "gid://shopify/RefundSession/2sl4WR9jF82W0vQVg8fjux9S"


def observed(succeeded: bool = True, shop: str = DOMAIN) -> RefundOutcome:
    request = RefundRequest(
        platform="shopify", shop=shop, platform_refund_id="929361464:1072844685", order_id="450789469",
        trade_no=TRADE_NO, amount=Decimal("30.00"), currency="CNY", reason="wrong size", alipay_account="main",
        context={"mode": "webhook", "order_gid": ORDER_GID, "refund_gid": "gid://shopify/Refund/929361464"},
    )
    code = "SUCCESS" if succeeded else "TRADE_HAS_CLOSED"
    return RefundOutcome(refund_id=42, request=request, succeeded=succeeded, code=code, batch_no="20261125000101")


def session_outcome(succeeded: bool = True) -> RefundOutcome:
    request = RefundRequest(
        platform="shopify", shop=DOMAIN, platform_refund_id="2sl4WR9jF82W0vQVg8fjux9S", order_id="",
        trade_no=TRADE_NO, amount=Decimal("30.00"), currency="CNY", reason="", alipay_account="main",
        context={"mode": "payments_app", "session_gid": SESSION_GID, "payment_id": "p-1"},
    )
    code = "SUCCESS" if succeeded else "TRADE_HAS_CLOSED"
    return RefundOutcome(refund_id=43, request=request, succeeded=succeeded, code=code, batch_no="20261125000102")


# --- observer mode: tag and metafield --------------------------------------------------------------------


async def test_a_result_becomes_a_tag_and_a_metafield(platform: ShopifyPlatform, fake: FakeShopify) -> None:
    for _ in range(2):  # reported again after a lost answer: nothing doubles
        assert (await platform.report(observed())).status is DeliveryStatus.DELIVERED
    assert fake.tags == {ORDER_GID: ["alipay-refund:succeeded"]}
    assert fake.metafields == {
        (ORDER_GID, "alipay_refund", "refund-929361464-1072844685"):
            {"status": "succeeded", "code": "SUCCESS", "batch_no": "20261125000101", "amount": "30.00"},
    }


async def test_a_failure_is_tagged_failed_with_alipays_code(platform: ShopifyPlatform, fake: FakeShopify) -> None:
    assert (await platform.report(observed(succeeded=False))).status is DeliveryStatus.DELIVERED
    assert fake.tags == {ORDER_GID: ["alipay-refund:failed"]}
    (value,) = fake.metafields.values()
    assert (value["status"], value["code"]) == ("failed", "TRADE_HAS_CLOSED")


async def test_user_errors_are_retried(platform: ShopifyPlatform, fake: FakeShopify) -> None:
    fake.answer_json({"data": {
        "tagsAdd": {"userErrors": []},
        "metafieldsSet": {"metafields": None, "userErrors": [
            {"field": ["metafields", "0", "value"], "message": "Value is invalid JSON.", "code": "INVALID_VALUE"}]},
    }})
    result = await platform.report(observed())
    assert result.status is DeliveryStatus.RETRY
    assert result.reason == "userErrors: INVALID_VALUE metafields.0.value: Value is invalid JSON."


async def test_throttling_is_retried_when_the_bucket_has_refilled(platform: ShopifyPlatform, fake: FakeShopify) -> None:
    fake.answer_throttled()
    result = await platform.report(observed())
    assert (result.status, result.retry_after_seconds) == (DeliveryStatus.RETRY, 1.0)  # (110 - 10) / 100 per second
    assert result.reason.startswith("THROTTLED")


@pytest.mark.parametrize(
    ("status", "headers", "expected", "wait"),
    [
        (429, {"Retry-After": "2.0"}, DeliveryStatus.RETRY, None),
        (429, {"Retry-After": "7"}, DeliveryStatus.RETRY, 7),
        (500, {}, DeliveryStatus.RETRY, None),
        (502, {}, DeliveryStatus.RETRY, None),
        (503, {"Retry-After": "1"}, DeliveryStatus.RETRY, 1),
        (401, {}, DeliveryStatus.DEAD, None),
        (403, {}, DeliveryStatus.DEAD, None),
        (404, {}, DeliveryStatus.DEAD, None),
    ],
)
async def test_http_errors(
    platform: ShopifyPlatform, fake: FakeShopify, status: int, headers: dict[str, str], expected: DeliveryStatus,
    wait: float | None,
) -> None:
    fake.answer_http(status, "shop says no", headers)
    result = await platform.report(observed())
    assert (result.status, result.retry_after_seconds) == (expected, wait)
    assert result.reason.startswith(f"HTTP {status}:") and "shop says no" in result.reason
    assert fake.tags == {}


async def test_a_refused_access_token_is_a_dead_letter_saying_so(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    platform = make_platform(fake, http, data, access_token="shpat_revoked")
    result = await platform.report(observed())
    assert result.status is DeliveryStatus.DEAD
    assert "HTTP 401: Shopify refused the access token" in result.reason and "shpat" not in result.reason


async def test_access_denied_is_dead_and_other_graphql_errors_retried(
    platform: ShopifyPlatform, fake: FakeShopify
) -> None:
    fake.answer_json({"errors": [{"message": "Access denied for tagsAdd field.",
                                  "extensions": {"code": "ACCESS_DENIED"}}]})
    fake.answer_json({"errors": [{"message": "Internal error. Looks like something went wrong on our end."}]})
    fake.answer_http(200, "<html>maintenance</html>")
    first, second, third = [await platform.report(observed()) for _ in range(3)]
    assert first.status is DeliveryStatus.DEAD and "Access denied" in first.reason
    assert second.status is DeliveryStatus.RETRY and "Internal error" in second.reason
    assert third.status is DeliveryStatus.RETRY


async def test_an_unreachable_shop_is_retried(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData, unused_tcp_port: int
) -> None:
    fake.url = f"http://127.0.0.1:{unused_tcp_port}"
    result = await make_platform(fake, http, data).report(observed())
    assert result.status is DeliveryStatus.RETRY and "ClientConnectorError" in result.reason


async def test_a_shop_no_longer_configured_is_dead(platform: ShopifyPlatform) -> None:
    assert (await platform.report(observed(shop="gone.myshopify.com"))).status is DeliveryStatus.DEAD


# --- payments-app mode: refund sessions ------------------------------------------------------------------


@pytest.fixture
def payments_app(fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData) -> ShopifyPlatform:
    fake.sessions[SESSION_GID] = "pending"
    return make_platform(fake, http, data, mode="payments_app")


async def test_success_resolves_the_session(payments_app: ShopifyPlatform, fake: FakeShopify) -> None:
    for _ in range(2):  # resolving again is idempotent on Shopify's side
        assert (await payments_app.report(session_outcome())).status is DeliveryStatus.DELIVERED
    assert fake.sessions[SESSION_GID] == "resolved"
    assert [operation for operation, _ in fake.calls] == ["RefundSessionResolve"] * 2


async def test_failure_rejects_the_session_with_a_merchant_message(
    payments_app: ShopifyPlatform, fake: FakeShopify
) -> None:
    assert (await payments_app.report(session_outcome(succeeded=False))).status is DeliveryStatus.DELIVERED
    assert fake.sessions[SESSION_GID] == "rejected"
    assert fake.rejections[SESSION_GID] == {
        "code": "PROCESSING_ERROR",
        "merchantMessage": "Refund not paid through Alipay: TRADE_HAS_CLOSED (交易已关闭，不允许退款), "
                           "Alipay batch 20261125000102",
    }


@pytest.mark.parametrize("state", ["rejected", None])
async def test_a_session_shopify_will_not_change_is_final(
    payments_app: ShopifyPlatform, fake: FakeShopify, state: str | None
) -> None:
    if state is None:
        del fake.sessions[SESSION_GID]
    else:
        fake.sessions[SESSION_GID] = state
    result = await payments_app.report(session_outcome())
    assert result.status is DeliveryStatus.DEAD
    assert ("REFUND_SESSION_INVALID_STATE" if state else "REFUND_SESSION_NOT_FOUND") in result.reason


async def test_other_session_user_errors_and_throttling_are_retried(
    payments_app: ShopifyPlatform, fake: FakeShopify
) -> None:
    fake.answer_json({"data": {"refundSessionResolve": {"refundSession": None, "userErrors": [
        {"field": ["id"], "message": "Try again later", "code": "PROCESSING_ERROR"}]}}})
    fake.answer_throttled()
    fake.answer_http(500)
    results = [await payments_app.report(session_outcome()) for _ in range(4)]
    assert [r.status for r in results] == [DeliveryStatus.RETRY] * 3 + [DeliveryStatus.DELIVERED]
    assert fake.sessions[SESSION_GID] == "resolved"
