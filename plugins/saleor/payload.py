"""The `TRANSACTION_REFUND_REQUESTED` payload, checked field by field into the canonical refund request (no I/O).

The webhook's subscription query (SUBSCRIPTION, set on the webhook when the app is installed) decides the fields.
Saleor writes amounts as JSON numbers (`PositiveDecimal` is a graphene Float), so they are read as `Decimal`
from their text, never through a binary float. The trade number is the transaction's `pspReference`, which the
payment app set to the Alipay trade number when it took the payment; the refund is the granted refund when the
request names one, else the request's `issuedAt` (Saleor stores a delivery's payload once and sends it unchanged
on every retry, so either is stable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from refund_adapter.plugin_api import RefundRequest, json_object, reject

from .settings import NAME, SaleorShop

EVENT = "transaction_refund_requested"  # the Saleor-Event header
SUBSCRIPTION = """\
subscription AlipayRefundRequested {
  event {
    ... on TransactionRefundRequested {
      issuedAt
      action { actionType amount currency }
      transaction {
        id
        pspReference
        chargedAmount { amount }
        refundPendingAmount { amount }
        refundedAmount { amount }
        order { id }
      }
      grantedRefund { id reason }
    }
  }
}
"""
PSP_REFERENCE_PREFIX = "alipay:"
_PAID_PARTS = ("chargedAmount", "refundPendingAmount", "refundedAmount")


def psp_reference(platform_refund_id: str) -> str:
    """The reference of our refund in Saleor: answered at once, then repeated in each event reported, which is
    how Saleor ties the result to the request (and drops a result reported twice)."""
    return PSP_REFERENCE_PREFIX + platform_refund_id


def parse_refund_requested(body: bytes, shop: SaleorShop) -> RefundRequest:
    """The refund Saleor asks for, or `WebhookRejected` (400) saying which field is wrong."""
    json_object(body)  # first the core's checks: an object, UTF-8, no NaN, no lone surrogate, not too deep
    document = json.loads(body, parse_float=Decimal, parse_int=Decimal)  # then the numbers, from their text
    if "action" in document and "transaction" in document and "issuedAt" not in document:
        reject(400, "subscription-required", "the legacy payload has no transaction id: give the webhook the "
               "subscription query of the adapter's README")
    action = _object(document, "action")
    transaction = _object(document, "transaction")
    granted = document.get("grantedRefund")
    if action.get("actionType") != "REFUND":
        reject(400, "malformed-body", "action.actionType must be REFUND")
    transaction_id = _text(transaction, "transaction.id")
    if isinstance(granted, Mapping):
        refund_part = _text(granted, "grantedRefund.id")
        reason = granted.get("reason") if isinstance(granted.get("reason"), str) else ""
    else:
        refund_part, reason = _text(document, "issuedAt"), ""
    platform_refund_id = f"{transaction_id}:{refund_part}"
    order = transaction.get("order")
    trade_no = transaction.get("pspReference")
    return RefundRequest(
        platform=NAME,
        shop=shop.id,
        platform_refund_id=platform_refund_id,
        order_id=_text(order, "transaction.order.id") if isinstance(order, Mapping) else "",
        trade_no=trade_no if isinstance(trade_no, str) else "",  # none: stored rejected, NO_ALIPAY_TRADE_NO
        amount=_amount(action.get("amount"), "action.amount"),  # zero, negative, 3 decimals: the core's to judge
        currency=_text(action, "action.currency"),
        reason=reason or f"Saleor refund {refund_part}",
        alipay_account=shop.alipay_account,
        paid_amount=_paid(transaction),
        context={"transaction_id": transaction_id, "psp_reference": psp_reference(platform_refund_id)},
    )


def _paid(transaction: Mapping[str, Any]) -> Decimal | None:
    """What the customer paid on the transaction, None unless the payload says: Saleor moves a refund's amount
    from charged to refund-pending to refunded (saleor/payment/transaction_item_calculations.py), so the three
    together stay the amount charged, whatever refunds came before."""
    parts = [transaction.get(name) for name in _PAID_PARTS]
    amounts = [part.get("amount") for part in parts if isinstance(part, Mapping)]
    if len(amounts) != len(_PAID_PARTS) or not all(_is_number(amount) for amount in amounts):
        return None
    return sum(amounts, Decimal(0))


def _object(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name)
    if not isinstance(value, Mapping):
        reject(400, "malformed-body", f"{name} must be an object (is the webhook's subscription query the README's?)")
    return value


def _text(document: Mapping[str, Any], path: str) -> str:
    value = document.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not value:
        reject(400, "malformed-body", f"{path} must be a non-empty string")
    return value


def _amount(value: Any, path: str) -> Decimal:
    if not _is_number(value):
        reject(400, "malformed-body", f"{path} must be a number")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite()
