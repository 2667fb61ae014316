"""The pure mapping from WooCommerce orders and refunds to refund requests: every rule that moves money."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from refund_adapter_woocommerce.mapping import (
    MalformedResource,
    Skipped,
    WooOrder,
    WooRefund,
    map_refund,
    parse_order,
    parse_refund,
)
from refund_adapter_woocommerce.settings import WooShop, parse_settings

from refund_adapter import RefundRequest

from .conftest import shop_section

SHOP: WooShop = next(iter(parse_settings(shop_section("https://shop.example/")).shops.values()))
SINCE = datetime(2026, 6, 1, tzinfo=UTC)
ORDER = {
    "id": 727, "status": "refunded", "currency": "CNY", "total": "29.35", "payment_method": "alipay",
    "payment_method_title": "Alipay", "transaction_id": "2024061522001412345678901234",
    "refunds": [{"id": 726, "reason": "damaged", "total": "-10.00"}, {"id": 730, "refund": "old key", "total": "-1"}],
    "meta_data": [],
}
REFUND = {
    "id": 726, "date_created": "2026-06-15T18:07:11", "date_created_gmt": "2026-06-15T10:07:11", "amount": "10.00",
    "reason": "damaged", "refunded_by": 1, "refunded_payment": False, "meta_data": [], "line_items": [],
}


def decide(order: dict[str, Any] = ORDER, refund: dict[str, Any] = REFUND) -> RefundRequest | Skipped:
    return map_refund(SHOP, parse_order(order), parse_refund(refund), since=SINCE, context={"via": "test"})


def test_a_refund_of_an_alipay_order_becomes_one_request() -> None:
    assert decide() == RefundRequest(
        platform="woocommerce",
        shop="shop.example",
        platform_refund_id="727:726",
        order_id="727",
        trade_no="2024061522001412345678901234",
        amount=Decimal("10.00"),
        currency="CNY",
        reason="damaged",
        alipay_account="main",
        paid_amount=Decimal("29.35"),
        context={"refund_id": 726, "via": "test"},
    )


def test_the_order_lists_its_refund_ids_old_and_new_key_alike() -> None:
    assert parse_order(ORDER).refund_ids == (726, 730)


@pytest.mark.parametrize("amount", ["10", "10.5", "10.500", "10.005"])
def test_amounts_are_read_exactly_with_the_shops_decimals(amount: str) -> None:
    request = decide(refund=REFUND | {"amount": amount})
    assert isinstance(request, RefundRequest) and request.amount == Decimal(amount)  # never rounded here


@pytest.mark.parametrize(
    ("order", "field", "value"),
    [
        (ORDER | {"currency": "USD"}, "currency", "USD"),
        (ORDER | {"transaction_id": ""}, "trade_no", ""),
        (ORDER | {"transaction_id": None}, "trade_no", ""),
        (ORDER | {"transaction_id": "PAYID-M2X"}, "trade_no", "PAYID-M2X"),
        (ORDER | {"total": "0.00"}, "paid_amount", None),
    ],
)
def test_a_refund_of_an_alipay_order_that_cannot_be_paid_is_handed_over_as_it_is(
    order: dict[str, Any], field: str, value: object
) -> None:
    """The core stores it rejected, with why: skipped, it was only a log line."""
    request = decide(order)
    assert isinstance(request, RefundRequest) and getattr(request, field) == value


def test_an_empty_reason_names_the_refund() -> None:
    request = decide(refund=REFUND | {"reason": ""})
    assert isinstance(request, RefundRequest) and request.reason == "WooCommerce refund 726"


@pytest.mark.parametrize(
    ("order", "refund", "reason", "warn"),
    [
        (ORDER, REFUND | {"refunded_payment": True}, "already refunded through the gateway", False),
        (ORDER | {"payment_method": "stripe"}, REFUND, "paid with 'stripe', not an Alipay gateway", False),
        (ORDER | {"payment_method": ""}, REFUND, "paid with 'no gateway'", False),
        (ORDER, REFUND | {"date_created_gmt": "2026-05-31T23:59:59"}, "created before 2026-06-01", False),
        (ORDER, REFUND | {"date_created_gmt": None}, "created before", False),
        (ORDER, REFUND | {"amount": "0.00"}, "nothing to pay back", False),
        (ORDER, REFUND | {"amount": "-10.00"}, "amount '-10.00' is not a positive decimal", True),
        (ORDER, REFUND | {"amount": "1e3"}, "amount '1e3' is not", True),
    ],
)
def test_refunds_that_are_not_ours_to_pay_are_skipped(
    order: dict[str, Any], refund: dict[str, Any], reason: str, warn: bool
) -> None:
    skipped = decide(order, refund)
    assert isinstance(skipped, Skipped)
    assert reason in skipped.reason and skipped.warn is warn


def test_the_first_second_of_since_counts() -> None:
    assert isinstance(decide(refund=REFUND | {"date_created_gmt": "2026-06-01T00:00:00"}), RefundRequest)


def test_every_configured_gateway_id_counts() -> None:
    order = replace(parse_order(ORDER), payment_method="wenprise_alipay")
    assert isinstance(map_refund(SHOP, order, parse_refund(REFUND), since=SINCE, context={}), RefundRequest)


@pytest.mark.parametrize(
    "document",
    [
        [ORDER],
        ORDER | {"id": "727"},
        ORDER | {"id": None},
        ORDER | {"id": True},
        ORDER | {"refunds": {"id": 1}},
        ORDER | {"refunds": [1]},
        ORDER | {"refunds": [{"id": -1}]},
        ORDER | {"payment_method": 7},
        {key: value for key, value in ORDER.items() if key != "id"},
    ],
)
def test_a_malformed_order_is_refused(document: Any) -> None:
    with pytest.raises(MalformedResource):
        parse_order(document)


@pytest.mark.parametrize("document", [None, REFUND | {"id": 0}, REFUND | {"amount": 10.0}])
def test_a_malformed_refund_is_refused(document: Any) -> None:
    with pytest.raises(MalformedResource):
        parse_refund(document)


def test_a_refund_date_is_utc() -> None:
    created = datetime(2026, 6, 15, 10, 7, 11, tzinfo=UTC)
    assert parse_refund(REFUND) == WooRefund(726, "10.00", "damaged", False, created)


def test_an_order_without_refunds_has_none() -> None:
    assert parse_order(ORDER | {"refunds": None}) == WooOrder(
        727, "CNY", Decimal("29.35"), "alipay", "2024061522001412345678901234", ()
    )
