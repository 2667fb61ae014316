"""What Shopify POSTs to us, checked into exact values: the refunds/create webhook and a refund session request.

Each problem is a `WebhookRejected` with a stable type. Amounts are decimal strings on Shopify's side; they are
read with the core's one amount grammar (no floats, no exponents).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from refund_adapter.alipay.codec import AlipayFormatError, parse_amount
from refund_adapter.money import CURRENCY
from refund_adapter.platform import json_object, non_empty_string, reject
from refund_adapter.untrusted import quote

MAX_ID = 2**63  # Shopify's ids are 64-bit: a larger one names no refund

# The status policy of a refunds/create transaction of kind "refund" (Shopify's REST names):
#   success          -> the refund is fetched from the Admin API and paid back through Alipay;
#   pending          -> fetched too, but paid only once Shopify reports it as success (a later poll sees that);
#   failure, error   -> never: Shopify recorded that this refund did not happen.
QUEUED_STATUSES = frozenset({"success", "pending"})


@dataclass(frozen=True)
class RefundNotice:
    """A refunds/create webhook, as far as the webhook decides anything: which refund, and whether it pays."""

    refund_id: int
    pays: bool  # a refund transaction that moves (or may yet move) money; False for restock-only refunds

    @property
    def gid(self) -> str:
        return f"gid://shopify/Refund/{self.refund_id}"


@dataclass(frozen=True)
class RefundSession:
    """A payments-app refund session request; `id` is Shopify's idempotency key, `gid` what mutations take."""

    id: str
    gid: str
    payment_id: str
    amount: Decimal
    currency: str


def parse_refund_notice(body: bytes) -> RefundNotice:
    """The refund of a refunds/create body (the REST `Refund` resource)."""
    document = json_object(body)
    refund_id = document.get("id")
    if type(refund_id) is not int or not 0 < refund_id < MAX_ID:
        reject(400, "malformed-body", "id must be the refund's numeric id")
    transactions = document.get("transactions", [])
    if not isinstance(transactions, list) or not all(isinstance(t, dict) for t in transactions):
        reject(400, "malformed-body", "transactions must be a list of objects")
    paying = [t for t in transactions if t.get("kind") == "refund" and t.get("status") in QUEUED_STATUSES]
    for transaction in paying:
        if transaction.get("currency") != CURRENCY:
            reject(
                422,
                "unsupported-currency",
                f"refund transaction {quote(transaction.get('id'))} is in {quote(transaction.get('currency'))}: "
                f"Alipay refunds are in {CURRENCY}",
            )
    return RefundNotice(refund_id=refund_id, pays=bool(paying))


def parse_refund_session(body: bytes) -> RefundSession:
    """A refund session request body; unknown fields are ignored (Shopify adds fields over time)."""
    document = json_object(body)
    text = {name: non_empty_string(document, name) for name in ("id", "gid", "payment_id", "amount", "currency")}
    if text["currency"] != CURRENCY:
        reject(422, "unsupported-currency", f"currency must be {CURRENCY}, not {quote(text['currency'])}")
    return RefundSession(
        id=text["id"],
        gid=text["gid"],
        payment_id=text["payment_id"],
        amount=amount(text["amount"]),
        currency=text["currency"],
    )


def amount(text: str) -> Decimal:
    """A positive Shopify decimal string with at most two decimals, or 422 invalid-amount."""
    try:
        return parse_amount(text)
    except AlipayFormatError:
        reject(422, "invalid-amount", f"amount {quote(text)} must be a positive decimal string with at most 2 decimals")
