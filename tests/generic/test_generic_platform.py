"""The generic platform against real Standard Webhooks signatures and a real shop server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from refund_adapter_generic import standard_webhooks
from refund_adapter_generic.adapter import GenericPlatform
from refund_adapter_generic.settings import GenericSettings, parse_settings

from refund_adapter import InboundWebhook, RefundOutcome, RefundRequest, ShopInfo, WebhookRejected
from refund_adapter.config import ConfigError
from refund_adapter.models import DeliveryStatus
from refund_adapter.plugins import collect_platforms, create_plugin_manager

SECRET = "whsec_" + base64.b64encode(b"generic-shop-secret-32-bytes-key").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"some-other-secret-of-32-bytes-!!").decode()
SHOP = "shop-1"

VALID_BODY = {
    "refund_id": "r-1001",
    "order_id": "o-77",
    "trade_no": "2024010122001400000000000001",
    "amount": "12.30",
    "currency": "CNY",
    "reason": "damaged",
    "paid_amount": "20.00",
}


def section(callback_url: str = "https://shop.example/refunds", **extra: Any) -> dict[str, Any]:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": callback_url, "alipay_account": "main"}
    return {"shops": [shop], **extra}


def webhook(
    body: dict[str, Any] | bytes = VALID_BODY,
    *,
    shop: str = SHOP,
    timestamp: int | None = None,
    secret: str = SECRET,
    signature: str | None = None,
) -> InboundWebhook:
    """A webhook as the web layer hands it over, signed like a shop would unless `signature` is given."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = CIMultiDict(
        standard_webhooks.signed_headers(secret, "msg_1", int(time.time()) if timestamp is None else timestamp, raw)
    )
    if signature is not None:
        headers["webhook-signature"] = signature
    return InboundWebhook(platform="generic", subpath=shop, headers=headers, query={}, body=raw)


@pytest.fixture
def platform(http: aiohttp.ClientSession) -> GenericPlatform:
    return GenericPlatform(parse_settings(section()), http)


async def rejection(platform: GenericPlatform, hook: InboundWebhook) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        await platform.receive(hook)
    return caught.value


# --- receive -----------------------------------------------------------------------------------------------


async def test_valid_webhook_becomes_a_refund_request(platform: GenericPlatform) -> None:
    accepted = await platform.receive(webhook())

    assert accepted.requests == (
        RefundRequest(
            platform="generic",
            shop=SHOP,
            platform_refund_id="r-1001",
            order_id="o-77",
            trade_no="2024010122001400000000000001",
            amount=Decimal("12.30"),
            currency="CNY",
            reason="damaged",
            alipay_account="main",
            paid_amount=Decimal("20.00"),
            context={"webhook_id": "msg_1"},
        ),
    )
    assert accepted.status == 200


async def test_paid_amount_is_optional(platform: GenericPlatform) -> None:
    body = {key: value for key, value in VALID_BODY.items() if key != "paid_amount"} | {"amount": "7"}
    (request,) = (await platform.receive(webhook(body))).requests
    assert request.amount == Decimal("7.00")  # the core's intake writes it as fen
    assert request.paid_amount is None


async def test_amount_equal_to_paid_is_accepted(platform: GenericPlatform) -> None:
    (request,) = (await platform.receive(webhook(VALID_BODY | {"amount": "20"}))).requests
    assert request.amount == request.paid_amount == Decimal("20.00")


async def test_one_matching_signature_among_several_is_enough(platform: GenericPlatform) -> None:
    signed = webhook()
    good = signed.headers["webhook-signature"]
    forged = standard_webhooks.sign(OTHER_SECRET, "msg_1", int(signed.headers["webhook-timestamp"]), signed.body)
    hook = webhook(timestamp=int(signed.headers["webhook-timestamp"]), signature=f"v1a,abc {forged} v1,!!! {good}")
    assert len((await platform.receive(hook)).requests) == 1


@pytest.mark.parametrize(
    "hook",
    [
        pytest.param(webhook(secret=OTHER_SECRET), id="forged"),
        pytest.param(webhook(signature=""), id="empty"),
        pytest.param(webhook(signature="v2,abc"), id="unknown-version"),
        pytest.param(webhook(signature="v1,not base64!"), id="not-base64"),
        pytest.param(webhook(signature="v1,Zm9v\u00e9"), id="not-ascii"),
    ],
)
async def test_forged_or_missing_signature_is_401(platform: GenericPlatform, hook: InboundWebhook) -> None:
    problem = await rejection(platform, hook)
    assert (problem.status, problem.type) == (401, "invalid-signature")


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_missing_header_is_401(platform: GenericPlatform, header: str) -> None:
    hook = webhook()
    headers = CIMultiDict(hook.headers)
    del headers[header]
    problem = await rejection(platform, InboundWebhook("generic", SHOP, headers, {}, hook.body))
    assert (problem.status, problem.type) == (401, "invalid-signature")


async def test_body_changed_after_signing_is_401(platform: GenericPlatform) -> None:
    hook = webhook()
    tampered = InboundWebhook("generic", SHOP, hook.headers, {}, hook.body.replace(b"12.30", b"92.30"))
    assert (await rejection(platform, tampered)).type == "invalid-signature"


@pytest.mark.parametrize("offset", [-301, 301, -86400])
async def test_timestamp_outside_tolerance_is_401(platform: GenericPlatform, offset: int) -> None:
    problem = await rejection(platform, webhook(timestamp=int(time.time()) + offset))
    assert (problem.status, problem.type) == (401, "stale-timestamp")


async def test_timestamp_within_tolerance_is_accepted(platform: GenericPlatform) -> None:
    assert (await platform.receive(webhook(timestamp=int(time.time()) - 250))).requests


async def test_tolerance_is_configurable(http: aiohttp.ClientSession) -> None:
    strict = GenericPlatform(parse_settings(section(tolerance_seconds="10")), http)
    assert (await rejection(strict, webhook(timestamp=int(time.time()) - 60))).type == "stale-timestamp"


async def test_unknown_shop_is_404_before_anything_else(platform: GenericPlatform) -> None:
    problem = await rejection(platform, webhook(b"not json", shop="nope", secret=OTHER_SECRET))
    assert (problem.status, problem.type) == (404, "unknown-shop")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"",
        b"\xff\xfe",
        b'["a list"]',
        b'{"amount": NaN}',
        json.dumps(VALID_BODY | {"trade_no": 2024010122001}).encode(),
        json.dumps({key: value for key, value in VALID_BODY.items() if key != "amount"}).encode(),
        json.dumps({key: value for key, value in VALID_BODY.items() if key != "reason"}).encode(),
        json.dumps(VALID_BODY | {"refund_id": 1001}).encode(),
        json.dumps(VALID_BODY | {"order_id": ""}).encode(),
    ],
)
async def test_malformed_body_is_400(platform: GenericPlatform, body: bytes) -> None:
    problem = await rejection(platform, webhook(body))
    assert (problem.status, problem.type) == (400, "malformed-body")


BAD_AMOUNTS = ["-1", "0", "0.00", "NaN", "1e2", "Infinity", "", " 1", "1.", ".5", "1,5", "１", "1" * 13]


@pytest.mark.parametrize("amount", [*BAD_AMOUNTS, 12.3, 100, None, True])
async def test_bad_amount_is_422(platform: GenericPlatform, amount: Any) -> None:
    problem = await rejection(platform, webhook(VALID_BODY | {"amount": amount}))
    assert (problem.status, problem.type) == (422, "invalid-amount")


@pytest.mark.parametrize("paid_amount", [*BAD_AMOUNTS, 20])
async def test_bad_paid_amount_is_422(platform: GenericPlatform, paid_amount: Any) -> None:
    problem = await rejection(platform, webhook(VALID_BODY | {"paid_amount": paid_amount}))
    assert (problem.status, problem.type) == (422, "invalid-amount")


@pytest.mark.parametrize(
    "change", [{"currency": "USD"}, {"currency": "cny"}, {"amount": "20.01"}, {"amount": "1.001"}, {"trade_no": ""}]
)
async def test_a_refund_that_cannot_be_paid_is_handed_over_as_sent(platform: GenericPlatform, change: dict[str, str]
                                                                   ) -> None:
    """The core stores it rejected, with its reason (tests/test_webhook_intake.py): a 4xx would only be resent."""
    (request,) = (await platform.receive(webhook(VALID_BODY | change))).requests
    name, value = next(iter(change.items()))
    assert str(getattr(request, name)) == value


async def test_a_refund_without_trade_no_is_handed_over_with_none(platform: GenericPlatform) -> None:
    body = {key: value for key, value in VALID_BODY.items() if key != "trade_no"}
    (request,) = (await platform.receive(webhook(body))).requests
    assert request.trade_no == ""  # the core stores it rejected, NO_ALIPAY_TRADE_NO


# --- report ------------------------------------------------------------------------------------------------


class Shop:
    """A shop's callback endpoint: checks our signature like a real shop must, then answers as told."""

    def __init__(self) -> None:
        self.url = ""
        self.deliveries: list[tuple[str, dict[str, Any]]] = []
        self.answer = web.Response(status=200)

    async def callback(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        standard_webhooks.verify(SECRET, request.headers, body, now=time.time())
        assert request.content_type == "application/json"
        self.deliveries.append((request.headers["webhook-id"], json.loads(body)))
        return self.answer


async def moved(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/refunds")


@pytest.fixture
async def shop(aiohttp_server: Callable[..., Any]) -> Shop:
    shop = Shop()
    app = web.Application()
    app.router.add_post("/refunds", shop.callback)
    app.router.add_post("/moved", moved)
    shop.url = str((await aiohttp_server(app)).make_url("/refunds"))
    return shop


@pytest.fixture
def reporting(shop: Shop, http: aiohttp.ClientSession) -> GenericPlatform:
    return GenericPlatform(parse_settings(section(shop.url)), http)


def outcome(succeeded: bool = True, shop: str = SHOP) -> RefundOutcome:
    request = RefundRequest(
        platform="generic",
        shop=shop,
        platform_refund_id="r-1001",
        order_id="o-77",
        trade_no="2024010122001400000000000001",
        amount=Decimal("12.3"),
        currency="CNY",
        reason="damaged",
        alipay_account="main",
    )
    code = "SUCCESS" if succeeded else "TRADE_HAS_CLOSED"
    return RefundOutcome(refund_id=42, request=request, succeeded=succeeded, code=code, batch_no="20240101001")


async def test_report_2xx_is_delivered_with_a_signed_stable_message(reporting: GenericPlatform, shop: Shop) -> None:
    assert (await reporting.report(outcome())).status is DeliveryStatus.DELIVERED
    shop.answer = web.Response(status=204)
    assert (await reporting.report(outcome(succeeded=False))).status is DeliveryStatus.DELIVERED

    assert [msg_id for msg_id, _ in shop.deliveries] == ["refund-42", "refund-42"]
    assert shop.deliveries[0][1] == {
        "refund_id": "r-1001",
        "order_id": "o-77",
        "trade_no": "2024010122001400000000000001",
        "amount": "12.30",
        "status": "succeeded",
        "code": "SUCCESS",
        "batch_no": "20240101001",
    }
    assert shop.deliveries[1][1]["status"] == "failed"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, DeliveryStatus.RETRY),
        (503, DeliveryStatus.RETRY),
        (404, DeliveryStatus.RETRY),
        (409, DeliveryStatus.RETRY),
        (401, DeliveryStatus.DEAD),
        (403, DeliveryStatus.DEAD),
        (410, DeliveryStatus.DEAD),
    ],
)
async def test_report_error_answers(reporting: GenericPlatform, shop: Shop, status: int, expected: str) -> None:
    shop.answer = web.Response(status=status, text="shop says no")
    result = await reporting.report(outcome())
    assert result.status is expected
    assert result.reason == f"HTTP {status}: shop says no"
    assert result.retry_after_seconds is None


async def test_report_429_honours_retry_after(reporting: GenericPlatform, shop: Shop) -> None:
    shop.answer = web.Response(status=429, headers={"Retry-After": "7"})
    result = await reporting.report(outcome())
    assert (result.status, result.retry_after_seconds) == (DeliveryStatus.RETRY, 7)


async def test_report_does_not_follow_a_redirect(reporting: GenericPlatform, shop: Shop, http: Any) -> None:
    moved = GenericPlatform(parse_settings(section(shop.url.replace("/refunds", "/moved"))), http)
    result = await moved.report(outcome())
    assert result.status is DeliveryStatus.RETRY and result.reason.startswith("HTTP 302")
    assert shop.deliveries == []


async def test_report_connection_refused_is_retried(http: aiohttp.ClientSession, unused_tcp_port: int) -> None:
    closed = GenericPlatform(parse_settings(section(f"http://127.0.0.1:{unused_tcp_port}/refunds")), http)
    result = await closed.report(outcome())
    assert result.status is DeliveryStatus.RETRY and "ClientConnectorError" in result.reason


async def test_report_for_a_shop_no_longer_configured_is_dead(reporting: GenericPlatform) -> None:
    assert (await reporting.report(outcome(shop="gone"))).status is DeliveryStatus.DEAD


# --- the rest of the adapter, and its settings ------------------------------------------------------------


async def test_reconcile_has_nothing_and_shops_are_listed(platform: GenericPlatform) -> None:
    assert await platform.reconcile(None) == ()
    assert platform.shops() == [ShopInfo(SHOP, "main", {"callback_url": "https://shop.example/refunds"})]


async def test_registered_through_the_entry_point_only_when_configured(http: aiohttp.ClientSession) -> None:
    pm = create_plugin_manager()
    assert collect_platforms(pm, SimpleNamespace(platforms={}), http) == {}
    registered = collect_platforms(pm, SimpleNamespace(platforms={"generic": section()}), http)
    assert isinstance(registered["generic"], GenericPlatform)


def test_settings_report_every_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            {
                "shops": [
                    {"id": "a/b", "secret": "whsec_***", "callback_url": "ftp://x", "alipay_account": "main"},
                    {"id": "dup", "secret": SECRET, "callback_url": "https://x", "alipay_account": "main"},
                    {"id": "dup", "secret": SECRET, "callback_url": "https://x", "alipay_account": "main"},
                    {"id": "c", "x": 1},
                ],
                "tolerance_second": 60,
                "tolerance_seconds": 0,
            }
        )
    assert caught.value.problems == [
        "platforms.generic.tolerance_second: unknown setting",
        "platforms.generic.tolerance_seconds: must be a positive whole number of seconds",
        "platforms.generic.shops[0].id: use 1-64 letters, digits, '.', '_' or '-' (it is part of the webhook URL)",
        "platforms.generic.shops[0].secret: a webhook secret must be whsec_ followed by base64",
        "platforms.generic.shops[0].callback_url: must be an http(s) URL",
        "platforms.generic.shops[2].id: duplicate shop id 'dup'",
        "platforms.generic.shops[3].x: unknown setting",
        "platforms.generic.shops[3].alipay_account: missing",
        "platforms.generic.shops[3].callback_url: missing",
        "platforms.generic.shops[3].secret: missing",
    ]


def test_settings_need_a_shop_and_the_secret_stays_out_of_reprs() -> None:
    with pytest.raises(ConfigError, match=r"shops: must list at least one shop"):
        parse_settings({"shops": []})
    settings = parse_settings(section())
    assert isinstance(settings, GenericSettings) and settings.tolerance_seconds == 300
    assert SECRET not in repr(settings)
