"""The poll that recovers refunds whose webhook never came, its durable cursor, and the webhook status check."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from refund_adapter_woocommerce.adapter import WooCommercePlatform
from refund_adapter_woocommerce.settings import parse_settings

from refund_adapter.platform import PluginData
from refund_adapter.testing import serve

from .conftest import MemoryData, inbound, shop_section
from .fake_woocommerce import FakeWooCommerce

Clock = list[float]


def adapter(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData, clock: Callable[[], float] = time.time,
    **settings: object,
) -> WooCommercePlatform:
    return WooCommercePlatform(parse_settings(shop_section(fake.url, **settings)), http,
                               PluginData(memory, "woocommerce"), clock)


def order_polls(fake: FakeWooCommerce) -> list[str]:
    """The modified_after of each GET /orders the store served."""
    return [call.query["modified_after"] for call in fake.calls if call.path == "orders"]


@pytest.fixture
def clock() -> Clock:
    return [time.time()]


@pytest.fixture
def ticking(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData, clock: Clock
) -> WooCommercePlatform:
    return adapter(fake, http, memory, lambda: clock[0])


async def test_a_refund_whose_webhook_never_came_is_found_by_the_poll(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    fake.add_order(727)
    missed = fake.add_refund(727, "10.00")
    fake.add_refund(727, "1.00", refunded_payment=True)
    fake.add_order(728, payment_method="cod")
    fake.add_refund(728, "5.00")

    (request,) = await platform.reconcile(None)

    assert request.platform_refund_id == f"727:{missed}" and request.context["via"] == "poll"
    assert [call.query["dates_are_gmt"] for call in fake.calls if call.path == "orders"] == ["true"]


async def test_the_poll_ignores_what_webhooks_decided(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    """A webhook's refunds are remembered before the core stores them: if that failed, the poll still has them."""
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    (from_webhook,) = (await platform.receive(inbound(*fake.delivery(727)))).requests
    (from_poll,) = await platform.reconcile(None)
    assert from_poll.key == from_webhook.key


async def test_each_shop_is_polled_at_its_own_interval(
    ticking: WooCommercePlatform, fake: FakeWooCommerce, clock: Clock
) -> None:
    await ticking.reconcile(None)
    clock[0] += 299
    await ticking.reconcile(None)
    assert len(order_polls(fake)) == 1 and [c.path for c in fake.calls].count("webhooks") == 1
    clock[0] += 2
    await ticking.reconcile(None)
    assert len(order_polls(fake)) == 2


async def test_the_cursor_moves_only_once_the_core_has_stored_a_poll(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData, clock: Clock
) -> None:
    platform = adapter(fake, http, memory, lambda: clock[0])
    start = clock[0]
    await platform.reconcile(None)  # stored? the core's `since` will tell
    clock[0] += 400
    await platform.reconcile(None)  # no: `since` did not move, so the same window is polled again
    clock[0] += 400
    await platform.reconcile(datetime.fromtimestamp(start + 400, UTC))  # yes: the second poll's start is the cursor
    second_start = datetime.fromtimestamp(start + 400, UTC).replace(microsecond=0)
    assert order_polls(fake) == [
        "2019-12-31T23:50:00",
        "2019-12-31T23:50:00",
        (second_start - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S"),
    ]
    restarted = adapter(fake, http, memory, lambda: clock[0])
    await restarted.reconcile(None)
    assert order_polls(fake)[-1] == order_polls(fake)[-2]


async def test_refunds_from_before_the_adapter_first_polled_are_never_paid(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    platform = adapter(fake, http, memory, refunds_since=None)
    fake.add_order(727)
    fake.add_refund(727, "10.00", created=datetime.now(UTC) - timedelta(hours=1))  # paid back some other way
    assert await platform.reconcile(None) == []
    new = fake.add_refund(727, "2.00")
    (request,) = (await platform.receive(inbound(*fake.delivery(727)))).requests
    assert request.platform_refund_id == f"727:{new}"


async def test_a_failing_store_is_polled_again_at_its_next_turn(
    ticking: WooCommercePlatform, fake: FakeWooCommerce, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    fake.fail(503, path="orders")
    assert await ticking.reconcile(None) == []
    assert "polling for refunds failed" in caplog.text and "HTTP 503" in caplog.text
    clock[0] += 301
    assert len(await ticking.reconcile(None)) == 1


async def test_a_throttled_store_is_left_alone_as_long_as_it_asks(
    ticking: WooCommercePlatform, fake: FakeWooCommerce, clock: Clock
) -> None:
    fake.fail(429, path="orders", headers={"Retry-After": "1000"})
    await ticking.reconcile(None)
    clock[0] += 999
    await ticking.reconcile(None)
    assert len(order_polls(fake)) == 1
    clock[0] += 2
    await ticking.reconcile(None)
    assert len(order_polls(fake)) == 2


async def test_one_failing_store_does_not_hide_another(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    other = FakeWooCommerce()
    async with serve(other.app()) as url:
        other.url = url
        section = shop_section(fake.url)
        section["shops"] += shop_section(other.url)["shops"]
        platform = WooCommercePlatform(parse_settings(section), http, PluginData(memory, "woocommerce"))
        fake.fail(500, path="orders")
        other.add_order(727)
        other.add_refund(727, "10.00")
        (request,) = await platform.reconcile(None)
    assert request.shop == other.url.removeprefix("http://")


async def test_every_page_of_modified_orders_is_read(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    for order_id in range(1, 151):
        fake.add_order(order_id, payment_method="cod")
    fake.add_order(500)
    fake.add_refund(500, "10.00")
    assert len(await platform.reconcile(None)) == 1
    assert [call.query["page"] for call in fake.calls if call.path == "orders"] == ["1", "2"]


async def test_a_malformed_order_is_skipped_not_fatal(
    platform: WooCommercePlatform, fake: FakeWooCommerce, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_order(726)["refunds"] = "broken"
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    assert len(await platform.reconcile(None)) == 1
    assert "skipped an order the API listed: refunds must be a list" in caplog.text


# --- the webhook's own status ---------------------------------------------------------------------------------


def hook(
    status: str, topic: str = "order.updated", url: str = "https://refunds.example/webhooks/woocommerce"
) -> dict[str, object]:
    return {"id": 12, "name": "refunds", "status": status, "topic": topic, "delivery_url": url}


@pytest.mark.parametrize(
    ("webhooks", "expected"),
    [
        ([hook("active")], "active"),
        ([hook("active"), hook("active", topic="action.woocommerce_order_refunded")], "active"),
        ([hook("disabled")], "webhook 12 (order.updated) disabled"),
        ([hook("paused", url="https://refunds.example/webhooks/woocommerce/")], "webhook 12 (order.updated) paused"),
        ([hook("active", topic="order.created")], "missing"),
        ([hook("active", url="https://elsewhere.example/hooks")], "missing"),
        ([], "missing"),
    ],
)
async def test_the_webhook_status_is_surfaced(
    platform: WooCommercePlatform, fake: FakeWooCommerce, caplog: pytest.LogCaptureFixture,
    webhooks: list[dict[str, object]], expected: str,
) -> None:
    assert platform.shops()[0].extra["webhook_status"] == "not checked yet"
    fake.webhooks = webhooks
    caplog.set_level(logging.WARNING)
    await platform.reconcile(None)
    assert platform.shops()[0].extra["webhook_status"] == expected
    warned = [record for record in caplog.records if "refunds are found only by polling" in record.getMessage()]
    assert bool(warned) is (expected != "active")


async def test_a_webhook_status_the_key_may_not_read_is_unknown(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    fake.fail(403, path="webhooks")
    assert len(await platform.reconcile(None)) == 1  # the poll itself goes on
    assert platform.shops()[0].extra["webhook_status"].startswith("unknown: GET webhooks: HTTP 403")
