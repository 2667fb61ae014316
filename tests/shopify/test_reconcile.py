"""Reconcile: queued webhook refunds fetched from the Admin API, and a per-shop poll for webhooks Shopify gave up on."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest
from multidict import CIMultiDict
from refund_adapter_shopify.adapter import ShopifyPlatform
from refund_adapter_shopify.settings import parse_settings

from refund_adapter import InboundWebhook, RefundRequest, WebhookAccepted
from refund_adapter.platform import PluginData
from refund_adapter.store import store_from_url

from .conftest import make_platform, queued, section
from .fake_shopify import DOMAIN, TRADE_NO, FakeShopify, webhook_headers


async def deliver(platform: ShopifyPlatform, payload: dict[str, object]) -> WebhookAccepted:
    body = json.dumps(payload).encode()
    return await platform.receive(InboundWebhook("shopify", "", CIMultiDict(webhook_headers(body)), {}, body))


async def next_round(platform: ShopifyPlatform) -> list[RefundRequest]:
    """A reconcile round as the core's poller calls it after storing the last round's requests."""
    return list(await platform.reconcile(datetime.now(UTC)))


def keys(requests: list[RefundRequest] | tuple[RefundRequest, ...]) -> set[str]:
    return {request.platform_refund_id for request in requests}


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


async def just_polled(fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData) -> ShopifyPlatform:
    """A platform that has just polled its shop (nothing found) and will not poll it again for a minute."""
    platform = ShopifyPlatform(parse_settings(section(fake.url, poll_interval_seconds=60)), http, data, Clock())
    assert await next_round(platform) == []
    return platform


async def test_a_queued_refund_becomes_one_request_per_refund_transaction(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData
) -> None:
    order = fake.add_order(450789469, "100.00")
    payload = fake.add_refund(order, 929361464, "30.00", "12.50")
    await deliver(platform, payload)
    first, second = (t["id"] for t in payload["transactions"])

    found = await next_round(platform)

    assert next(r for r in found if r.platform_refund_id == f"929361464:{first}") == (
        RefundRequest(
            platform="shopify", shop=DOMAIN, platform_refund_id=f"929361464:{first}", order_id="450789469",
            trade_no=TRADE_NO, amount=Decimal("30.00"), currency="CNY", reason="wrong size", alipay_account="main",
            paid_amount=Decimal("100.00"),
            context={"mode": "webhook", "order_gid": "gid://shopify/Order/450789469",
                     "refund_gid": "gid://shopify/Refund/929361464"},
        )
    )
    assert keys(found) == {f"929361464:{first}", f"929361464:{second}"}
    assert ("AlipayRefunds", {"ids": ["gid://shopify/Refund/929361464"]}) in fake.calls


async def test_the_queue_is_emptied_only_at_the_next_round(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData, http: aiohttp.ClientSession
) -> None:
    await deliver(platform, fake.add_refund(fake.add_order(1), 2, "30.00"))
    await next_round(platform)
    # A crash before the core stored what the round returned: a new process fetches the refund again.
    restarted = make_platform(fake, http, data)
    assert await queued(data) == ["gid://shopify/Refund/2"]
    assert len(await next_round(restarted)) == 2  # the due fetch and the first poll
    await next_round(restarted)
    assert await queued(data) == []


async def test_a_round_the_core_did_not_store_is_done_again(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData
) -> None:
    await deliver(platform, fake.add_refund(fake.add_order(1), 2, "30.00"))
    since = datetime.now(UTC)
    await platform.reconcile(since)
    await platform.reconcile(since)  # the store failed: `since` did not move
    assert await queued(data) == ["gid://shopify/Refund/2"]
    assert await data.get(f"cursor:{DOMAIN}") is None
    await next_round(platform)
    assert await queued(data) == []


async def test_a_queued_refund_is_fetched_in_the_round_its_webhook_asks_for_not_at_the_next_poll(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    platform = await just_polled(fake, http, data)
    payload = fake.add_refund(fake.add_order(1), 2, "30.00")
    assert (await deliver(platform, payload)).reconcile_soon
    assert keys(await next_round(platform)) == {f"2:{payload['transactions'][0]['id']}"}  # same second as the poll
    assert [op for op, _ in fake.calls] == ["AlipayRecentRefunds", "AlipayRefunds"]  # and no extra poll


async def test_concurrent_webhooks_of_one_shop_on_two_instances_all_become_requests(
    fake: FakeShopify, http: aiohttp.ClientSession, pg_url: str
) -> None:
    stores = [store_from_url(pg_url) for _ in range(2)]  # two adapter instances on one PostgreSQL database
    await asyncio.gather(*(store.open() for store in stores))
    try:
        platforms = [await just_polled(fake, http, PluginData(store, "shopify")) for store in stores]
        payloads = [fake.add_refund(fake.add_order(number), number + 1, "30.00") for number in (10, 20, 30, 40)]
        # Two webhooks at once on each instance; only the queue can return them, the poll is not due.
        await asyncio.gather(*(deliver(platforms[n % 2], payload) for n, payload in enumerate(payloads)))
        assert await queued(PluginData(stores[0], "shopify")) == [f"gid://shopify/Refund/{n}" for n in (11, 21, 31, 41)]
        found = await next_round(platforms[0])
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert keys(found) == {f"{payload['id']}:{payload['transactions'][0]['id']}" for payload in payloads}


async def test_pending_refunds_wait_and_a_later_poll_pays_them(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    clock = Clock()
    platform = ShopifyPlatform(parse_settings(section(fake.url, poll_interval_seconds=60)), http, data, clock)
    order = fake.add_order(1)
    payload = fake.add_refund(order, 2, "30.00", status="pending")
    await deliver(platform, payload)
    assert await next_round(platform) == []

    order.refunds[0].transactions[0].status = "success"
    clock.now += 30
    assert await next_round(platform) == []  # the shop's poll is rate-limited
    clock.now += 30
    assert keys(await next_round(platform)) == {f"2:{payload['transactions'][0]['id']}"}


async def test_the_poll_finds_refunds_whose_webhooks_never_came_across_pages(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    clock = Clock()
    platform = ShopifyPlatform(parse_settings(section(fake.url)), http, data, clock)
    expected = set()
    for number in range(1, 121):
        payload = fake.add_refund(fake.add_order(number), 10_000 + number, "1.00")
        expected.add(f"{10_000 + number}:{payload['transactions'][0]['id']}")
    fake.add_order(999)  # no refund

    assert keys(await next_round(platform)) == expected
    assert [op for op, _ in fake.calls] == ["AlipayRecentRefunds"] * 3  # 50 + 50 + 21 orders
    await next_round(platform)
    assert await data.get(f"cursor:{DOMAIN}") == "2026-09-21T14:08:20Z"  # the first poll's start, less 5 minutes


async def test_a_shops_first_poll_looks_back_a_day_then_from_its_stored_cursor(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    clock = Clock()
    platform = ShopifyPlatform(parse_settings(section(fake.url, poll_interval_seconds=1)), http, data, clock)
    await next_round(platform)
    clock.now += 10
    await next_round(platform)
    queries = [variables["query"] for op, variables in fake.calls if op == "AlipayRecentRefunds"]
    assert queries == ["updated_at:>='2026-09-20T14:13:20Z'", "updated_at:>='2026-09-21T14:08:20Z'"]


@pytest.mark.parametrize(
    ("source", "order_options"),
    [
        ("receipt:payment.trade_no", {"receipt": {"payment": {"trade_no": TRADE_NO, "buyer": "x"}}}),
        ("receipt:trades.1", {"receipt": {"trades": ["2026000000000000000000000009", int(TRADE_NO)]}}),
        ("note_attribute:alipay_trade_no", {"note_attributes": [{"name": "alipay_trade_no", "value": TRADE_NO}]}),
    ],
)
async def test_configurable_trade_number_sources(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData, source: str, order_options: dict[str, object]
) -> None:
    platform = make_platform(fake, http, data, trade_no_source=source)
    fake.add_order(1, trade_no="not-this-one", **order_options)  # type: ignore[arg-type]
    fake.add_refund(fake.orders[1], 2, "30.00")
    (request,) = {r.key: r for r in await next_round(platform)}.values()
    assert request.trade_no == TRADE_NO
    assert request.paid_amount == (None if source.startswith("note_attribute") else Decimal("100.00"))


async def test_a_refund_without_a_trade_number_is_handed_over_without_one(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData, caplog: pytest.LogCaptureFixture
) -> None:
    """The core stores it rejected, NO_ALIPAY_TRADE_NO, once: left out, it was warned about at every poll."""
    platform = make_platform(fake, http, data, trade_no_source="note_attribute:alipay_trade_no")
    other = fake.add_refund(fake.add_order(1), 2, "30.00")
    good = fake.add_refund(fake.add_order(3, note_attributes=[{"name": "alipay_trade_no", "value": TRADE_NO}]), 4, "5")
    with caplog.at_level(logging.WARNING):
        found = await next_round(platform)
    trade_nos = {request.platform_refund_id: request.trade_no for request in found}
    assert trade_nos == {f"2:{other['transactions'][0]['id']}": "", f"4:{good['transactions'][0]['id']}": TRADE_NO}
    assert caplog.records == []


@pytest.mark.parametrize("failure", ["throttled", "503", "401"])
async def test_an_api_failure_keeps_the_queue_for_the_next_round(
    platform: ShopifyPlatform, fake: FakeShopify, data: PluginData, failure: str
) -> None:
    await deliver(platform, fake.add_refund(fake.add_order(1), 2, "30.00"))
    if failure == "throttled":
        fake.answer_throttled()
    else:
        fake.answer_http(int(failure))
    assert await next_round(platform) == []
    assert await next_round(platform) != []  # the due refund again; the poll waits for its interval
    assert await queued(data) == ["gid://shopify/Refund/2"]


async def test_payments_app_shops_are_not_polled(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData
) -> None:
    platform = make_platform(fake, http, data, mode="payments_app")
    fake.add_refund(fake.add_order(1), 2, "30.00")
    assert await next_round(platform) == []
    assert fake.calls == []


async def test_answers_of_another_shape_are_logged_not_fatal(
    platform: ShopifyPlatform, fake: FakeShopify, caplog: pytest.LogCaptureFixture
) -> None:
    await deliver(platform, fake.add_refund(fake.add_order(1), 2, "30.00"))
    fake.answer_json({"data": {"nodes": [{"id": "gid://shopify/Refund/2", "note": None}]}})  # no transactions
    fake.answer_json({"data": {"shop": {}}})  # no orders
    with caplog.at_level(logging.WARNING):
        assert await next_round(platform) == []
    assert "refund of an unexpected shape" in caplog.text and "unexpected answer from the Admin API" in caplog.text
