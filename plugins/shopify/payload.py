"""What Shopify POSTs to us, checked into exact values: the refunds/create webhook and a refund session request.

Each problem is a `WebhookRejected` with a stable type. Amounts are decimal strings on Shopify's side; they are
read with the core's decimal grammar (no floats, no exponents). A refund in another currency or with more than 2
decimals is a refund all the same: the core stores it rejected and the plugin reports why (a 4xx would only have
Shopify send it again, and at last remove the subscription).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from refund_adapter.plugin_api import json_object, non_empty_string, parse_decimal_text, quote, reject

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
    return RefundNotice(refund_id=refund_id, pays=bool(paying))


def parse_refund_session(body: bytes) -> RefundSession:
    """A refund session request body; unknown fields are ignored (Shopify adds fields over time)."""
    document = json_object(body)
    text = {name: non_empty_string(document, name) for name in ("id", "gid", "payment_id", "amount", "currency")}
    return RefundSession(
        id=text["id"],
        gid=text["gid"],
        payment_id=text["payment_id"],
        amount=amount(text["amount"]),
        currency=text["currency"],
    )


def amount(text: str) -> Decimal:
    """A positive Shopify decimal string, or 422 invalid-amount (more than 2 decimals are the core's to judge)."""
    value = parse_decimal_text(text)
    if value is None or value == 0:
        reject(422, "invalid-amount", f"amount {quote(text)} must be a positive decimal string")
    return value
