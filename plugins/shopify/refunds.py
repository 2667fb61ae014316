"""A refund as the Admin GraphQL API shows it -> the refund requests the core stores (observer mode).

One request per refund transaction of kind REFUND and status SUCCESS, keyed `{refund id}:{transaction id}`:
the transactions of one refund may refund different payments, so each has its own trade number and its own
Alipay result. Both ids are Shopify's numeric ids, the same in webhooks and in the API. A transaction without
a trade number where the shop keeps it (an order paid some other way), in another currency or with more than 2
decimals becomes a request all the same: the core stores it rejected, once, and the result is written back, so
the poll does not meet it as new at every round.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from refund_adapter.plugin_api import RefundRequest, parse_decimal_text

from .settings import NAME, WEBHOOK, ShopifyShop, TradeNoSource

log = logging.getLogger(__name__)


class UnusableRefund(ValueError):
    """A refund transaction that cannot become a refund request: its amount is no positive decimal."""


def legacy_id(gid: str) -> str:
    """The numeric id at the end of a GraphQL gid (`gid://shopify/Order/450789469` -> `450789469`)."""
    return gid.rsplit("/", 1)[-1].split("?", 1)[0]


def refund_requests(shop: ShopifyShop, refund: Mapping[str, Any]) -> list[RefundRequest]:
    """The requests of one refund node; a transaction that cannot be used is logged and left out."""
    requests = []
    order = refund["order"]
    for transaction in refund["transactions"]["nodes"]:
        if transaction["kind"] != "REFUND" or transaction["status"] != "SUCCESS":
            continue
        try:
            requests.append(_request(shop, refund, order, transaction))
        except UnusableRefund as exc:
            log.warning("shopify %s refund %s: transaction %s left out: %s",
                        shop.domain, refund["id"], transaction["id"], exc)
    return requests


def _request(
    shop: ShopifyShop, refund: Mapping[str, Any], order: Mapping[str, Any], transaction: Mapping[str, Any]
) -> RefundRequest:
    parent = transaction.get("parentTransaction")
    amount, currency = _money(transaction)
    paid = _money(parent) if parent and shop.trade_no_source.kind != "note_attribute" else None
    return RefundRequest(
        platform=NAME,
        shop=shop.domain,
        platform_refund_id=f"{legacy_id(refund['id'])}:{legacy_id(transaction['id'])}",
        order_id=legacy_id(order["id"]),
        trade_no=read_trade_no(shop.trade_no_source, order, parent),
        amount=amount,
        currency=currency,
        reason=refund.get("note") or "",
        alipay_account=shop.alipay_account,
        paid_amount=paid[0] if paid and paid[1] == currency else None,
        context={"mode": WEBHOOK, "order_gid": order["id"], "refund_gid": refund["id"]},
    )


def _money(transaction: Mapping[str, Any]) -> tuple[Decimal, str]:
    """The amount the customer paid in (presentment money: what the Alipay trade was in)."""
    money = transaction["amountSet"]["presentmentMoney"]
    amount = parse_decimal_text(money["amount"])
    if amount is None or amount == 0:
        raise UnusableRefund(f"amount {money['amount']!r} is no positive decimal")
    return amount, money["currencyCode"]


def read_trade_no(source: TradeNoSource, order: Mapping[str, Any], parent: Mapping[str, Any] | None) -> str:
    """The Alipay trade number where the shop keeps it; "" when there is none (the core stores the refund
    rejected, NO_ALIPAY_TRADE_NO)."""
    if source.kind == "note_attribute":
        attributes = {item.get("key"): item.get("value") for item in order.get("customAttributes") or ()}
        value: Any = attributes.get(source.argument)
    elif parent is None:
        return ""
    elif source.kind == "authorization":
        value = parent.get("authorizationCode")
    else:
        value = _json_path(parent.get("receiptJson"), source.argument)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a trade number written as a JSON number (exact: Python ints are unbounded)
    return value.strip() if isinstance(value, str) else ""


def _json_path(receipt: Any, path: str) -> Any:
    """`a.b.0.c` in the receipt JSON (a string in GraphQL's receiptJson); None when any step is missing."""
    try:
        node = json.loads(receipt) if isinstance(receipt, str) else receipt
    except ValueError:
        return None
    for step in path.split("."):
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


def usable(shop: ShopifyShop, refunds: Sequence[Any]) -> list[RefundRequest]:
    """The requests of several refund nodes; a node of an unexpected shape is logged, never fatal to the rest."""
    requests = []
    for refund in refunds:
        try:
            requests += refund_requests(shop, refund)
        except (KeyError, TypeError, AttributeError) as exc:
            log.warning("shopify %s: refund of an unexpected shape left out (%r): %s", shop.domain, exc, refund)
    return requests
