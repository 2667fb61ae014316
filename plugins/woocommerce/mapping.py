"""WooCommerce orders and refunds (REST v3 shapes) -> canonical refund requests, with no I/O.

Every rule that decides whether money moves lives here, so that the webhook and the poller cannot disagree:
only orders paid through one of the shop's Alipay gateways; never a refund the gateway plugin already paid back
(`refunded_payment`), nor one created before the adapter watched the shop. A refund of an Alipay order that
cannot be paid (another currency, a transaction id that is no Alipay trade number, more than 2 decimals) is
handed over all the same: the core stores it rejected with its reason, once, and the order gets a note saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from refund_adapter.plugin_api import RefundRequest, parse_decimal_text, quote

from .settings import WooShop

NAME = "woocommerce"
MAX_ID = 2**63  # WordPress ids are 64-bit: a larger one names nothing, and our store could not hold it


class MalformedResource(ValueError):
    """An order or refund document without the fields every WooCommerce version sends."""


@dataclass(frozen=True)
class WooOrder:
    id: int
    currency: str
    total: Decimal | None  # what the customer paid, None when it is not a positive amount
    payment_method: str
    transaction_id: str
    refund_ids: tuple[int, ...]  # from refunds[]: {id, reason (or "refund" in old versions), total < 0}


@dataclass(frozen=True)
class WooRefund:
    """GET /orders/<id>/refunds/<refund_id>: the only place with the amount and `refunded_payment`."""

    id: int
    amount: str
    reason: str
    refunded_payment: bool
    created: datetime | None  # date_created_gmt


@dataclass(frozen=True)
class Skipped:
    """A refund (or a whole order) that is not ours to pay back; `warn` when the operator should look."""

    reason: str
    warn: bool = False


def parse_order(document: Any) -> WooOrder:
    """An order from a webhook payload or the REST API, or `MalformedResource` naming the bad field."""
    if not isinstance(document, dict):
        raise MalformedResource("an order must be a JSON object")
    refunds = document.get("refunds") or []
    if not isinstance(refunds, list) or not all(isinstance(item, dict) for item in refunds):
        raise MalformedResource("refunds must be a list of objects")
    return WooOrder(
        id=_id(document.get("id"), "id"),
        currency=_text(document, "currency"),
        total=_total(_text(document, "total")),
        payment_method=_text(document, "payment_method"),
        transaction_id=_text(document, "transaction_id"),
        refund_ids=tuple(_id(item.get("id"), "refunds[].id") for item in refunds),
    )


def parse_refund(document: Any) -> WooRefund:
    if not isinstance(document, dict):
        raise MalformedResource("a refund must be a JSON object")
    return WooRefund(
        id=_id(document.get("id"), "id"),
        amount=_text(document, "amount"),
        reason=_text(document, "reason"),
        refunded_payment=document.get("refunded_payment") is True,
        created=_gmt(document.get("date_created_gmt")),
    )


def order_skipped(shop: WooShop, order: WooOrder) -> Skipped | None:
    """Why none of this order's refunds is ours, or None; checked before fetching any refund. An order paid with
    another gateway is that gateway's to refund: routine, not the operator's concern (only debug-logged)."""
    if order.payment_method not in shop.alipay_gateway_ids:
        return Skipped(f"paid with {quote(order.payment_method or 'no gateway')}, not an Alipay gateway")
    return None


def map_refund(
    shop: WooShop, order: WooOrder, refund: WooRefund, *, since: datetime, context: dict[str, Any]
) -> RefundRequest | Skipped:
    """The refund request for one WooCommerce refund of `order`, or why there is none.

    `since` is the first moment whose refunds the adapter pays: older ones were paid back some other way.
    """
    skipped = order_skipped(shop, order)
    if skipped is not None:
        return skipped
    if refund.refunded_payment:
        return Skipped("already refunded through the gateway (refunded_payment): refunding again would pay twice")
    if refund.created is None or refund.created < since:
        return Skipped(f"created before {since.isoformat()}, when the adapter started paying this shop's refunds")
    amount = parse_decimal_text(refund.amount)
    if amount == 0:
        return Skipped("nothing to pay back (amount 0)")
    if amount is None:
        return Skipped(f"amount {quote(refund.amount)} is not a positive decimal", True)
    return RefundRequest(
        platform=NAME,
        shop=shop.id,
        platform_refund_id=f"{order.id}:{refund.id}",
        order_id=str(order.id),
        trade_no=order.transaction_id,
        amount=amount,  # more than 2 decimals: the core's to judge
        currency=order.currency,
        reason=refund.reason or f"WooCommerce refund {refund.id}",
        alipay_account=shop.alipay_account,
        paid_amount=order.total,
        context={"refund_id": refund.id, **context},
    )


def _total(text: str) -> Decimal | None:
    """What the order's customer paid ("29.35", "10", "10.500", with the shop's decimals), None unless positive."""
    return parse_decimal_text(text) or None


def _id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < MAX_ID:
        raise MalformedResource(f"{name} must be a positive 64-bit integer")
    return value


def _text(document: dict[str, Any], name: str) -> str:
    value = document.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedResource(f"{name} must be a string")
    return value.strip()


def _gmt(value: Any) -> datetime | None:
    """WooCommerce's `*_gmt` dates are ISO 8601 without an offset, in UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
