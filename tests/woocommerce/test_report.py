"""Write-back against the fake store: a private note and `_alipay_refund_<id>` metadata, once, whatever retries."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from refund_adapter_woocommerce.adapter import WooCommercePlatform
from refund_adapter_woocommerce.settings import parse_settings

from refund_adapter import RefundOutcome, RefundRequest
from refund_adapter.models import DeliveryStatus
from refund_adapter.platform import PluginData
from refund_adapter.testing import free_port

from .conftest import MemoryData, inbound, shop_section
from .fake_woocommerce import FakeWooCommerce

TRADE = "2026061522001412345678901234"


async def refund_request(platform: WooCommercePlatform, fake: FakeWooCommerce) -> tuple[RefundRequest, int]:
    fake.add_order(727)
    refund_id = fake.add_refund(727, "10.00")
    (request,) = (await platform.receive(inbound(*fake.delivery(727)))).requests
    return request, refund_id


def outcome(request: RefundRequest, succeeded: bool = True) -> RefundOutcome:
    code = "SUCCESS" if succeeded else "TRADE_HAS_CLOSED"
    return RefundOutcome(refund_id=41, request=request, succeeded=succeeded, code=code, batch_no="2026061500041")


async def test_a_result_becomes_a_private_note_and_order_metadata(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    request, refund_id = await refund_request(platform, fake)

    assert (await platform.report(outcome(request))).status is DeliveryStatus.DELIVERED

    (note,) = fake.notes[727]
    assert note["customer_note"] is False
    assert note["note"] == (
        f"Alipay refund succeeded for refund #{refund_id}: 10.00 CNY, code SUCCESS, batch_no 2026061500041, "
        f"trade {TRADE}"
    )
    assert fake.meta(727, f"_alipay_refund_{refund_id}") == {
        "status": "succeeded", "code": "SUCCESS", "batch_no": "2026061500041", "amount": "10.00", "trade_no": TRADE,
    }


async def test_a_failure_is_written_back_too(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    request, refund_id = await refund_request(platform, fake)
    assert (await platform.report(outcome(request, succeeded=False))).status is DeliveryStatus.DELIVERED
    assert "Alipay refund failed" in fake.notes[727][0]["note"]
    assert fake.meta(727, f"_alipay_refund_{refund_id}")["code"] == "TRADE_HAS_CLOSED"


async def test_reporting_again_adds_no_second_note(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    request, _ = await refund_request(platform, fake)
    for _ in range(3):
        assert (await platform.report(outcome(request))).status is DeliveryStatus.DELIVERED
    assert len(fake.notes[727]) == 1 and len(fake.orders[727]["meta_data"]) == 1


async def test_metadata_failing_after_the_note_is_retried_without_a_second_note(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    request, refund_id = await refund_request(platform, fake)
    fake.fail(502, method="PUT", path="orders/727")

    first = await platform.report(outcome(request))

    assert first.status is DeliveryStatus.RETRY and "HTTP 502" in first.reason
    assert len(fake.notes[727]) == 1 and fake.meta(727, f"_alipay_refund_{refund_id}") is None
    assert (await platform.report(outcome(request))).status is DeliveryStatus.DELIVERED
    assert len(fake.notes[727]) == 1 and fake.meta(727, f"_alipay_refund_{refund_id}") is not None


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"Retry-After": "7"}, DeliveryStatus.RETRY, 7.0),
        (500, {}, DeliveryStatus.RETRY, None),
        (503, {}, DeliveryStatus.RETRY, None),
        (301, {"Location": "https://elsewhere.example/"}, DeliveryStatus.RETRY, None),
        (400, {}, DeliveryStatus.DEAD, None),
        (401, {}, DeliveryStatus.DEAD, None),
        (403, {}, DeliveryStatus.DEAD, None),
        (404, {}, DeliveryStatus.DEAD, None),
    ],
)
async def test_the_store_answer_decides_retry_or_dead(
    platform: WooCommercePlatform, fake: FakeWooCommerce, status: int, headers: dict[str, str],
    expected: DeliveryStatus, retry_after: float | None,
) -> None:
    request, _ = await refund_request(platform, fake)
    fake.fail(status, path="orders/727/notes", headers=headers)
    result = await platform.report(outcome(request))
    assert (result.status, result.retry_after_seconds) == (expected, retry_after)
    assert f"POST orders/727/notes: HTTP {status}" in result.reason
    assert fake.notes.get(727) is None


async def test_a_deleted_order_is_dead(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    request, _ = await refund_request(platform, fake)
    del fake.orders[727]
    result = await platform.report(outcome(request))
    assert result.status is DeliveryStatus.DEAD and "HTTP 404" in result.reason


async def test_wrong_credentials_are_dead(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    request, _ = await refund_request(platform, fake)
    fake.auth = "query"  # the store no longer accepts what the adapter sends
    result = await platform.report(outcome(request))
    assert result.status is DeliveryStatus.DEAD and "HTTP 401" in result.reason


async def test_an_unreachable_store_is_retried(
    platform: WooCommercePlatform, fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    request, _ = await refund_request(platform, fake)
    gone = WooCommercePlatform(
        parse_settings(shop_section(f"http://{request.shop.split(':')[0]}:{free_port()}")),
        http, PluginData(memory, "woocommerce"),
    )
    moved = dataclasses.replace(request, shop=next(iter(gone.shops())).id)
    assert (await gone.report(outcome(moved))).status is DeliveryStatus.RETRY


async def test_a_store_no_longer_configured_is_dead(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    request, _ = await refund_request(platform, fake)
    result = await platform.report(outcome(dataclasses.replace(request, shop="gone.example")))
    assert result.status is DeliveryStatus.DEAD and "gone.example" in result.reason
