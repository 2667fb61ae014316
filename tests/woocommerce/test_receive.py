"""Webhook deliveries against a fake WooCommerce on 127.0.0.1: ping, source, signature, body, new refunds only."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from refund_adapter_woocommerce import webhook as wire
from refund_adapter_woocommerce.adapter import WooCommercePlatform
from refund_adapter_woocommerce.settings import parse_settings

from refund_adapter import WebhookAccepted, WebhookRejected
from refund_adapter.platform import PluginData
from refund_adapter.testing import free_port

from .conftest import MemoryData, inbound, shop_section
from .fake_woocommerce import CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET, FakeWooCommerce, ping

TRADE = "2026061522001412345678901234"


async def receive(platform: WooCommercePlatform, fake: FakeWooCommerce, order: int, **kwargs: Any) -> WebhookAccepted:
    return await platform.receive(inbound(*fake.delivery(order, **kwargs)))


async def rejection(platform: WooCommercePlatform, headers: dict[str, str], body: bytes) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        await platform.receive(inbound(headers, body))
    return caught.value


async def test_the_creation_ping_gets_exactly_200_and_nothing_else(
    platform: WooCommercePlatform, fake: FakeWooCommerce, memory: MemoryData
) -> None:
    assert await platform.receive(inbound(*ping())) == WebhookAccepted()
    assert fake.calls == [] and memory.items == {}


async def test_two_new_refunds_and_one_old_yield_two_requests_and_a_replay_none(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    fake.add_order(727, total="29.35")
    old = fake.add_refund(727, "3.00")
    (first,) = (await receive(platform, fake, 727)).requests
    assert first.platform_refund_id == f"727:{old}"
    new = [fake.add_refund(727, "10.00"), fake.add_refund(727, "5.50", reason="")]
    fetched_before = len(fake.refund_fetches())

    requests = (await receive(platform, fake, 727)).requests

    assert [(r.platform_refund_id, r.amount, r.paid_amount, r.trade_no) for r in requests] == [
        (f"727:{new[0]}", Decimal("10.00"), Decimal("29.35"), TRADE),
        (f"727:{new[1]}", Decimal("5.50"), Decimal("29.35"), TRADE),
    ]
    # The amounts came from the refunds themselves, fetched once each; the old refund was not fetched again.
    assert fake.refund_fetches()[fetched_before:] == [f"orders/727/refunds/{rid}" for rid in new]
    assert requests[0].context["via"] == "webhook" and requests[0].context["delivery_id"].startswith("delivery-")
    replay = await receive(platform, fake, 727)
    assert replay.requests == () and len(fake.refund_fetches()) == fetched_before + 2


async def test_a_refund_the_gateway_already_paid_yields_none(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00", refunded_payment=True)
    assert (await receive(platform, fake, 727)).requests == ()
    assert (await receive(platform, fake, 727)).requests == ()
    assert len(fake.refund_fetches()) == 1  # decided once, remembered


async def test_an_order_paid_otherwise_costs_no_api_call(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    fake.add_order(727, payment_method="stripe")
    fake.add_refund(727, "10.00")
    assert (await receive(platform, fake, 727)).requests == ()
    assert fake.calls == []


async def test_the_action_topic_fetches_the_order(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    fake.add_order(727)
    refund = fake.add_refund(727, "10.00")
    (request,) = (await receive(platform, fake, 727, topic=wire.ORDER_REFUNDED)).requests
    assert request.platform_refund_id == f"727:{refund}"
    assert [call.path for call in fake.calls] == ["orders/727", f"orders/727/refunds/{refund}"]


@pytest.mark.parametrize("topic", ["order.created", "product.updated", "action.woocommerce_payment_complete", ""])
async def test_other_topics_are_answered_200_and_ignored(
    platform: WooCommercePlatform, fake: FakeWooCommerce, topic: str
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    assert (await receive(platform, fake, 727, topic=topic)).requests == ()
    assert fake.calls == []


async def test_the_source_is_normalised(platform: WooCommercePlatform, fake: FakeWooCommerce) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    headers, body = fake.delivery(727)
    headers[wire.SOURCE] = fake.url.replace("http://", "https://").upper() + "/"
    assert len((await platform.receive(inbound(headers, body))).requests) == 1


# --- refusals: the right status, and nothing remembered or fetched -------------------------------------------


Tamper = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def _signed(signature: Callable[[bytes], str]) -> Tamper:
    return lambda headers, body: (headers | {wire.SIGNATURE: signature(body)}, body)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_signed(lambda body: wire.sign("other secret", "sha256", body)), id="forged"),
        pytest.param(_signed(lambda body: wire.sign(WEBHOOK_SECRET, "sha1", body)), id="other-algorithm"),
        pytest.param(_signed(lambda body: "not base64!"), id="not-base64"),
        pytest.param(_signed(lambda body: "é"), id="not-ascii"),
        pytest.param(_signed(lambda body: ""), id="empty"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != wire.SIGNATURE}, b), id="missing"),
        pytest.param(lambda h, b: (h, b.replace(b'"100.00"', b'"900.00"')), id="body-changed"),
    ],
)
async def test_a_wrong_signature_is_401(
    platform: WooCommercePlatform, fake: FakeWooCommerce, memory: MemoryData, tamper: Tamper
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    headers, body = tamper(*fake.delivery(727))
    problem = await rejection(platform, headers, body)
    assert (problem.status, problem.type) == (401, "invalid-signature")
    assert fake.calls == [] and memory.items == {}


async def test_the_signature_algorithm_is_configurable(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    sha512 = WooCommercePlatform(
        parse_settings(shop_section(fake.url, signature_algorithm="sha512")), http, PluginData(memory, "woocommerce")
    )
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    assert len((await receive(sha512, fake, 727, algorithm="sha512")).requests) == 1
    assert (await rejection(sha512, *fake.delivery(727))).type == "invalid-signature"


@pytest.mark.parametrize("source", ["https://other.example/", "", "not a url"])
async def test_an_unknown_source_is_404(
    platform: WooCommercePlatform, fake: FakeWooCommerce, memory: MemoryData, source: str
) -> None:
    fake.add_order(727)
    headers, body = fake.delivery(727)
    headers[wire.SOURCE] = source
    problem = await rejection(platform, headers, body)
    assert (problem.status, problem.type) == (404, "unknown-shop")
    assert fake.calls == [] and memory.items == {}


async def test_a_ping_shaped_body_with_a_signature_is_no_ping(
    platform: WooCommercePlatform, fake: FakeWooCommerce
) -> None:
    headers, _ = fake.delivery(0, body=b"{}")
    assert (await rejection(platform, headers, b"webhook_id=12")).type == "invalid-signature"


@pytest.mark.parametrize(
    ("topic", "body"),
    [
        (wire.ORDER_UPDATED, b"{"),
        (wire.ORDER_UPDATED, b""),
        (wire.ORDER_UPDATED, b"\xff\xfe"),
        (wire.ORDER_UPDATED, b"[1]"),
        (wire.ORDER_UPDATED, b'{"status": "refunded"}'),
        (wire.ORDER_UPDATED, json.dumps({"id": 727, "refunds": "726", "payment_method": "alipay"}).encode()),
        (wire.ORDER_REFUNDED, b'{"action": "woocommerce_order_refunded"}'),
        (wire.ORDER_REFUNDED, b'{"action": "woocommerce_order_refunded", "arg": "seven"}'),
        (wire.ORDER_REFUNDED, b'{"action": "woocommerce_order_refunded", "arg": [727]}'),
    ],
)
async def test_a_malformed_body_is_400(
    platform: WooCommercePlatform, fake: FakeWooCommerce, memory: MemoryData, topic: str, body: bytes
) -> None:
    problem = await rejection(platform, *fake.delivery(0, topic=topic, body=body))
    assert (problem.status, problem.type) == (400, "malformed-body")
    assert fake.calls == [] and memory.items == {}


# --- the store's API failing while a webhook waits -------------------------------------------------------------


@pytest.mark.parametrize(("status", "refusal"), [
    (401, (502, "shop-api-error")),
    (404, (422, "not-found-in-store")),  # the store's own webhook names a refund its API does not have: not a 5xx
    (429, (502, "shop-api-error")),
    (500, (502, "shop-api-error")),
    (503, (502, "shop-api-error")),
])
async def test_an_api_failure_is_refused_and_the_refund_is_fetched_next_time(
    platform: WooCommercePlatform, fake: FakeWooCommerce, memory: MemoryData, status: int, refusal: tuple[int, str]
) -> None:
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    fake.add_refund(727, "2.00")
    fake.fail(status, path="orders/727/refunds/", headers={"Retry-After": "3"})
    problem = await rejection(platform, *fake.delivery(727))
    assert (problem.status, problem.type) == refusal
    assert f"HTTP {status}" in problem.detail and "next poll" in problem.detail
    assert memory.items == {}  # nothing decided: the other refund is not lost either
    assert len((await receive(platform, fake, 727)).requests) == 2


async def test_wrong_credentials_are_a_502_without_the_secret(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    fake.auth = "query"
    wrong = WooCommercePlatform(parse_settings(shop_section(fake.url)), http, PluginData(memory, "woocommerce"))
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    problem = await rejection(wrong, *fake.delivery(727, topic=wire.ORDER_REFUNDED))
    assert (problem.status, problem.type) == (502, "shop-api-error") and "HTTP 401" in problem.detail


async def test_query_string_credentials_are_sent_when_configured(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    fake.auth = "query"
    platform = WooCommercePlatform(
        parse_settings(shop_section(fake.url, auth="query")), http, PluginData(memory, "woocommerce")
    )
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    assert len((await receive(platform, fake, 727)).requests) == 1
    fake.fail(500, body=f"PHP Fatal error at ?consumer_secret={CONSUMER_SECRET}")
    fake.add_refund(727, "1.00")
    problem = await rejection(platform, *fake.delivery(727))
    assert CONSUMER_SECRET not in problem.detail and "consumer_secret=***" in problem.detail


async def test_api_keys_an_error_page_echoes_are_redacted_even_where_its_detail_is_cut(
    fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData
) -> None:
    fake.auth = "query"
    platform = WooCommercePlatform(
        parse_settings(shop_section(fake.url, auth="query")), http, PluginData(memory, "woocommerce")
    )
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    echoed = f"Not found: ?consumer_key={CONSUMER_KEY}&consumer_secret="
    fake.fail(500, body=echoed + "x" * (190 - len(echoed)) + CONSUMER_SECRET)  # the secret straddles the cut at 200
    problem = await rejection(platform, *fake.delivery(727))
    assert "consumer_key=***" in problem.detail and CONSUMER_KEY not in problem.detail
    assert CONSUMER_SECRET[:10] not in problem.detail  # was kept: the detail was cut before it was redacted


async def test_an_unreachable_store_is_a_502(http: aiohttp.ClientSession, memory: MemoryData) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    platform = WooCommercePlatform(parse_settings(shop_section(url)), http, PluginData(memory, "woocommerce"))
    fake = FakeWooCommerce(url=url)
    fake.add_order(727)
    fake.add_refund(727, "10.00")
    problem = await rejection(platform, *fake.delivery(727))
    assert (problem.status, problem.type) == (502, "shop-api-error")


async def test_an_order_without_refunds_is_quiet(
    platform: WooCommercePlatform, fake: FakeWooCommerce, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_order(727, trade_no="")  # pending payment: no trade number yet
    assert (await receive(platform, fake, 727)).requests == ()
    assert fake.calls == [] and caplog.records == []
