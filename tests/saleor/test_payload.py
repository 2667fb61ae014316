"""The TRANSACTION_REFUND_REQUESTED payload mapped to the canonical refund request, field by field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from refund_adapter_saleor.payload import SUBSCRIPTION, parse_refund_requested
from refund_adapter_saleor.settings import parse_settings

from refund_adapter.plugin_api import WebhookRejected

from .fake_saleor import TRADE_NO, FakeSaleor

SHOP = next(iter(parse_settings({"shops": [
    {"api_url": "https://shop.example/graphql/", "app_token": "t", "alipay_account": "main"}]}).shops.values()))


def payload(**changes: Any) -> dict[str, Any]:
    fake = FakeSaleor()
    transaction = fake.add_transaction("100.00")
    document = json.loads(fake.refund_requested(transaction, "30.10", granted_refund="R3JhbnRlZFJlZnVuZDox"))
    return document | changes


def test_a_granted_refund_is_the_refund_and_the_transaction_holds_the_trade() -> None:
    document = payload()
    request = parse_refund_requested(json.dumps(document).encode(), SHOP)
    transaction_id = document["transaction"]["id"]
    assert request.platform == "saleor" and request.shop == "https://shop.example/graphql"
    assert request.platform_refund_id == f"{transaction_id}:R3JhbnRlZFJlZnVuZDox"
    assert request.trade_no == TRADE_NO
    assert request.amount == Decimal("30.10") and request.currency == "CNY"
    assert request.paid_amount == Decimal("100.00")  # charged 69.90 + pending 30.10 + refunded 0
    assert request.order_id == document["transaction"]["order"]["id"]
    assert request.reason == "wrong size" and request.alipay_account == "main"
    assert request.context == {"transaction_id": transaction_id,
                               "psp_reference": f"alipay:{transaction_id}:R3JhbnRlZFJlZnVuZDox"}


def test_without_a_granted_refund_the_request_time_tells_refunds_apart() -> None:
    document = payload(grantedRefund=None)
    request = parse_refund_requested(json.dumps(document).encode(), SHOP)
    assert request.platform_refund_id == f"{document['transaction']['id']}:{document['issuedAt']}"
    assert request.reason == f"Saleor refund {document['issuedAt']}"


def test_amounts_are_read_from_their_text() -> None:
    body = json.dumps(payload()).replace("30.1", "0.30000000000000004").encode()
    assert parse_refund_requested(body, SHOP).amount == Decimal("0.30000000000000004")  # the core rejects it


def test_what_saleor_does_not_say_is_left_to_the_core() -> None:
    """No trade number: stored rejected (NO_ALIPAY_TRADE_NO); amounts missing: no paid-amount guard."""
    document = payload()
    document["transaction"]["pspReference"] = None
    del document["transaction"]["refundedAmount"]
    request = parse_refund_requested(json.dumps(document).encode(), SHOP)
    assert request.trade_no == "" and request.paid_amount is None


def _set(path: str, value: Any) -> dict[str, Any]:
    document = payload()
    *parents, last = path.split(".")
    node = document
    for name in parents:
        node = node[name]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("document", "type_"),
    [
        (b"[1, 2]", "malformed-body"),
        (b'{"action": ', "malformed-body"),
        (_set("action.amount", "30.10"), "malformed-body"),
        (_set("action.amount", True), "malformed-body"),
        (_set("action.actionType", "CHARGE"), "malformed-body"),
        (_set("action.currency", ""), "malformed-body"),
        (_set("transaction.id", None), "malformed-body"),
        (_set("transaction", "T1"), "malformed-body"),
        (_set("grantedRefund", {"id": 5}), "malformed-body"),
        (payload(grantedRefund=None, issuedAt=None), "malformed-body"),
        ({"action": {"type": "refund", "value": "9.00", "currency": "CNY"}, "transaction": {"psp_reference": "x"},
          "meta": {}}, "subscription-required"),
    ],
    ids=["list", "truncated", "amount-text", "amount-bool", "charge", "currency", "transaction-id", "transaction",
         "granted-id", "no-issued-at", "legacy"],
)
def test_a_body_without_a_refund_is_refused(document: Any, type_: str) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(WebhookRejected) as refused:
        parse_refund_requested(body, SHOP)
    assert (refused.value.status, refused.value.type) == (400, type_)


def test_nan_is_refused() -> None:
    body = json.dumps(payload()).replace("30.1", "NaN").encode()
    with pytest.raises(WebhookRejected, match="malformed-body"):
        parse_refund_requested(body, SHOP)


def test_the_subscription_selects_every_field_read() -> None:
    flat = " ".join(SUBSCRIPTION.split())
    for selection in ("issuedAt", "action { actionType amount currency }", "pspReference", "chargedAmount { amount }",
                      "refundPendingAmount { amount }", "refundedAmount { amount }", "order { id }",
                      "grantedRefund { id reason }", "... on TransactionRefundRequested"):
        assert selection in flat
