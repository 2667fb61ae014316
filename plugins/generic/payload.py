"""The generic refund webhook's JSON body, checked field by field into the canonical refund request.

Amounts are JSON *strings* of plain decimal CNY (`"12.30"`): a JSON number would pass through a binary float in
most senders, which is how cents get lost, so it is refused with `invalid-amount` like any other bad amount.
What is a refund but cannot be paid (another currency, no trade number, more than 2 decimals, more than the paid
amount) is the core intake's to store as rejected: the sender gets its 2xx and the result callback says why.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from refund_adapter.plugin_api import RefundRequest, json_object, non_empty_string, parse_decimal_text, reject

from .settings import GenericShop

PLATFORM = "generic"


def parse_refund_request(body: bytes, shop: GenericShop, webhook_id: str) -> RefundRequest:
    """The body's refund for `shop`, or `WebhookRejected` with a stable type saying what is wrong with it."""
    document = json_object(body)
    refund_id, order_id, currency = (non_empty_string(document, name) for name in ("refund_id", "order_id", "currency"))
    reason, trade_no = document.get("reason"), document.get("trade_no", "")  # no trade number: stored rejected
    if not isinstance(reason, str) or not isinstance(trade_no, str):
        reject(400, "malformed-body", "reason and trade_no must be strings")
    amount = _amount(document, "amount")
    paid_amount = _amount(document, "paid_amount") if document.get("paid_amount") is not None else None
    return RefundRequest(
        platform=PLATFORM, shop=shop.id, platform_refund_id=refund_id, order_id=order_id, trade_no=trade_no,
        amount=amount, currency=currency, reason=reason, alipay_account=shop.alipay_account, paid_amount=paid_amount,
        # Only for tracing a refund back to the shop's delivery: report() needs nothing beyond the request.
        context={"webhook_id": webhook_id},
    )


def _amount(document: dict[str, Any], name: str) -> Decimal:
    if name not in document:
        reject(400, "malformed-body", f"{name} is missing")
    amount = parse_decimal_text(document[name])
    if amount is None or amount == 0:
        reject(422, "invalid-amount", f'{name} must be a positive JSON string of plain decimal CNY, e.g. "12.30"')
    return amount  # more than 2 decimals: the core's to judge
