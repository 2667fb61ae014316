"""A fake Shopify shop on 127.0.0.1: the Admin and Payments Apps GraphQL endpoints the plugin calls.

It checks what a real shop would refuse (the access token, each document's operation and fields, the variables'
shapes), keeps orders, refunds, tags, metafields and refund sessions, and can be told to answer with HTTP errors,
throttling or userErrors (the kit's `FakePlatform` records the requests and gives the scripted answers). Payload
builders give the REST shapes Shopify sends in webhooks (platforms.md §1.1).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from refund_adapter_shopify import signature

from refund_adapter.testing import FakePlatform

DOMAIN = "alipay-test.myshopify.com"
TOKEN = "shpat_test_token"
SECRET = "shopify-client-secret"
API_VERSION = "2025-07"
TRADE_NO = "2026112522000000000000000001"

# Each operation: the fields its document must select (a shop refuses a document that asks for what it lacks,
# and a plugin that forgets userErrors cannot see a refusal).
DOCUMENT_FIELDS = {
    "AlipayRefundResult": ("mutation", ["tagsAdd(id: $orderId, tags: $tags) { userErrors { field message } }",
                                        "metafieldsSet(metafields: $metafields)", "userErrors { field message code }"]),
    "RefundSessionResolve": ("mutation", ["refundSessionResolve(id: $id)", "userErrors { field message code }"]),
    "RefundSessionReject": ("mutation", ["refundSessionReject(id: $id, reason: $reason)",
                                         "userErrors { field message code }"]),
    "AlipayRefunds": ("query", ["nodes(ids: $ids)", "...AlipayRefund", "fragment AlipayRefund on Refund"]),
    "AlipayRecentRefunds": ("query", ["orders(first: 50, after: $after, query: $query, sortKey: UPDATED_AT)",
                                      "pageInfo { hasNextPage endCursor }", "fragment AlipayRefund on Refund"]),
}
REFUND_FRAGMENT_FIELDS = ["authorizationCode", "receiptJson", "customAttributes { key value }",
                          "presentmentMoney { amount currencyCode }", "parentTransaction", "kind", "status"]
ADMIN_OPERATIONS = {"AlipayRefundResult", "AlipayRefunds", "AlipayRecentRefunds"}
SESSION_OPERATIONS = {"RefundSessionResolve", "RefundSessionReject"}
GID = re.compile(r"gid://shopify/(\w+)/([\w-]+)")
_ids = itertools.count(1_072_844_700)


def webhook_headers(body: bytes, *, secret: str = SECRET, topic: str = "refunds/create",
                    domain: str = DOMAIN) -> dict[str, str]:
    """The headers Shopify sends with a webhook (platforms.md §1.1)."""
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature.sign(secret, body),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": f"b54557e4-{next(_ids)}",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-11-25T10:34:55.000Z",
    }


def session_body(session_id: str, payment_id: str, amount: str = "30.00", currency: str = "CNY") -> dict[str, Any]:
    """A refund session request body (platforms.md §1.2)."""
    return {"id": session_id, "gid": f"gid://shopify/RefundSession/{session_id}", "payment_id": payment_id,
            "amount": amount, "currency": currency, "merchant_locale": "en", "proposed_at": "2026-11-25T00:00:00Z"}


@dataclass
class Transaction:
    id: int
    kind: str  # REST: sale, capture, refund...
    status: str  # REST: success, pending, failure, error
    amount: str
    currency: str = "CNY"
    parent_id: int | None = None
    authorization: str | None = None
    receipt: dict[str, Any] = field(default_factory=dict)


@dataclass
class Refund:
    id: int
    note: str
    transactions: list[Transaction]


@dataclass
class Order:
    id: int
    updated_at: datetime
    payment: Transaction
    note_attributes: list[dict[str, str]] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return f"gid://shopify/Order/{self.id}"


class FakeShopify(FakePlatform):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.orders: dict[int, Order] = {}
        self.tags: dict[str, list[str]] = {}
        self.metafields: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.sessions: dict[str, str] = {}  # session gid -> pending | resolved | rejected
        self.rejections: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (operation, variables) of each accepted call
        self.violations: list[str] = []  # what a real shop would have refused; tests expect none

    # --- the shop's data ---------------------------------------------------------------------------------

    def add_order(self, order_id: int, amount: str = "100.00", *, trade_no: str = TRADE_NO,
                  note_attributes: list[dict[str, str]] | None = None, receipt: dict[str, Any] | None = None) -> Order:
        payment = Transaction(next(_ids), "sale", "success", amount, authorization=trade_no, receipt=receipt or {})
        order = Order(order_id, datetime.now(UTC), payment, note_attributes or [])
        self.orders[order_id] = order
        return order

    def add_refund(self, order: Order, refund_id: int, *amounts: str, status: str = "success",
                   note: str = "wrong size") -> dict[str, Any]:
        """A refund of `amounts` (one refund transaction each) on the order; returns its refunds/create payload."""
        transactions = [Transaction(next(_ids), "refund", status, amount, parent_id=order.payment.id,
                                    authorization=order.payment.authorization) for amount in amounts]
        refund = Refund(refund_id, note, transactions)
        order.refunds.append(refund)
        order.updated_at = datetime.now(UTC)
        return refund_payload(order, refund)

    # --- the server --------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/admin/api/{version}/graphql.json", self._admin)
        app.router.add_post("/payments_apps/api/{version}/graphql.json", self._payments)

    def answer_http(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
        self.answer_next(status, body=text, headers=headers)

    def answer_json(self, body: dict[str, Any]) -> None:
        self.answer_next(200, json=body)

    def answer_throttled(self) -> None:
        self.answer_json({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                              "documentation": "https://shopify.dev/api/usage/limits"}}],
            "extensions": {"cost": {"requestedQueryCost": 110, "actualQueryCost": None, "throttleStatus": {
                "maximumAvailable": 2000.0, "currentlyAvailable": 10, "restoreRate": 100.0}}},
        })

    async def _admin(self, request: web.Request) -> web.Response:
        return await self._graphql(request, ADMIN_OPERATIONS)

    async def _payments(self, request: web.Request) -> web.Response:
        return await self._graphql(request, SESSION_OPERATIONS)

    async def _graphql(self, request: web.Request, allowed: set[str]) -> web.Response:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        if request.match_info["version"] != API_VERSION or request.content_type != "application/json":
            return web.Response(status=404)
        body = await request.json()
        try:
            operation = check_document(body["query"])
            assert operation in allowed, f"{operation} is not on {request.path}"
            variables = body["variables"]
            data = getattr(self, "_" + operation)(variables)
        except (AssertionError, KeyError, TypeError) as exc:
            self.violations.append(f"{type(exc).__name__}: {exc}")
            return web.json_response({"errors": [{"message": f"invalid request: {exc}"}]})
        self.calls.append((operation, variables))
        return web.json_response({"data": data})

    # --- operations: each checks its variables as Shopify's schema would ---------------------------------

    def _AlipayRefundResult(self, variables: dict[str, Any]) -> dict[str, Any]:
        order_gid = variables["orderId"]
        assert GID.fullmatch(order_gid) and order_gid.startswith("gid://shopify/Order/"), order_gid
        assert isinstance(variables["tags"], list) and all(isinstance(tag, str) for tag in variables["tags"])
        tags = self.tags.setdefault(order_gid, [])
        tags += [tag for tag in variables["tags"] if tag not in tags]
        for metafield in variables["metafields"]:
            assert set(metafield) == {"ownerId", "namespace", "key", "type", "value"}, metafield
            assert metafield["type"] == "json" and re.fullmatch(r"[\w-]{2,64}", metafield["key"]), metafield
            key = (metafield["ownerId"], metafield["namespace"], metafield["key"])
            self.metafields[key] = json.loads(metafield["value"])
        return {"tagsAdd": {"userErrors": []}, "metafieldsSet": {"metafields": [{"id": "gid://shopify/Metafield/1"}],
                                                                 "userErrors": []}}

    def _session(self, gid: str, state: str, variables: dict[str, Any]) -> dict[str, Any]:
        assert gid.startswith("gid://shopify/RefundSession/"), gid
        current = self.sessions.get(gid)
        if current is None:
            return _user_error("REFUND_SESSION_NOT_FOUND", "The refund session does not exist.")
        if current not in ("pending", state):
            return _user_error("REFUND_SESSION_INVALID_STATE", f"The refund session is {current}.")
        self.sessions[gid] = state
        if "reason" in variables:
            self.rejections[gid] = variables["reason"]
        return {"refundSession": {"id": gid}, "userErrors": []}

    def _RefundSessionResolve(self, variables: dict[str, Any]) -> dict[str, Any]:
        return {"refundSessionResolve": self._session(variables["id"], "resolved", variables)}

    def _RefundSessionReject(self, variables: dict[str, Any]) -> dict[str, Any]:
        reason = variables["reason"]
        assert reason["code"] == "PROCESSING_ERROR" and isinstance(reason["merchantMessage"], str), reason
        return {"refundSessionReject": self._session(variables["id"], "rejected", variables)}

    def _AlipayRefunds(self, variables: dict[str, Any]) -> dict[str, Any]:
        wanted = variables["ids"]
        assert all(gid.startswith("gid://shopify/Refund/") for gid in wanted), wanted
        found = {f"gid://shopify/Refund/{r.id}": (o, r) for o in self.orders.values() for r in o.refunds}
        return {"nodes": [graphql_refund(*found[gid]) if gid in found else None for gid in wanted]}

    def _AlipayRecentRefunds(self, variables: dict[str, Any]) -> dict[str, Any]:
        match = re.fullmatch(r"updated_at:>='(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)'", variables["query"])
        assert match, variables["query"]
        since = datetime.fromisoformat(match.group(1))
        orders = sorted((o for o in self.orders.values() if o.updated_at >= since), key=lambda o: o.updated_at)
        start = int(variables.get("after") or 0)
        page = orders[start : start + 50]
        return {"orders": {
            "pageInfo": {"hasNextPage": start + 50 < len(orders), "endCursor": str(start + 50)},
            "nodes": [{"updatedAt": o.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "refunds": [graphql_refund(o, r) for r in o.refunds]} for o in page],
        }}


def check_document(document: str) -> str:
    """The operation name of a document that selects what its operation needs; AssertionError otherwise."""
    match = re.match(r"\s*(query|mutation) (\w+)\(", document)
    assert match, document
    kind, operation = match.groups()
    expected_kind, needed = DOCUMENT_FIELDS[operation]
    flat = " ".join(document.split())
    assert kind == expected_kind and all(n in flat for n in needed), flat
    if "fragment AlipayRefund" in flat:
        assert all(n in flat for n in REFUND_FRAGMENT_FIELDS), flat
    assert flat.count("{") == flat.count("}"), flat
    return operation


def _user_error(code: str, message: str) -> dict[str, Any]:
    return {"refundSession": None, "userErrors": [{"field": ["id"], "message": message, "code": code}]}


def refund_payload(order: Order, refund: Refund) -> dict[str, Any]:
    """The REST `Refund` resource, as refunds/create delivers it."""
    return {
        "id": refund.id,
        "order_id": order.id,
        "created_at": "2026-11-25T10:34:55-05:00",
        "processed_at": "2026-11-25T10:34:55-05:00",
        "note": refund.note,
        "user_id": None,
        "restock": False,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund.id}",
        "refund_line_items": [{"id": 1058498311, "line_item_id": 518995019, "quantity": 1, "restock_type": "return",
                               "subtotal": 199.0, "total_tax": 3.98}],
        "transactions": [rest_transaction(order, t) for t in refund.transactions],
        "order_adjustments": [],
    }


def rest_transaction(order: Order, transaction: Transaction) -> dict[str, Any]:
    return {
        "id": transaction.id, "order_id": order.id, "parent_id": transaction.parent_id, "kind": transaction.kind,
        "status": transaction.status, "gateway": "alipay", "amount": transaction.amount,
        "currency": transaction.currency, "authorization": transaction.authorization, "receipt": transaction.receipt,
        "message": None, "test": False, "error_code": None, "source_name": "web",
        "created_at": "2026-11-25T12:59:12-04:00",
        "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{transaction.id}",
    }


def _graphql_transaction(transaction: Transaction) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/OrderTransaction/{transaction.id}",
        "kind": transaction.kind.upper(),
        "status": transaction.status.upper(),
        "authorizationCode": transaction.authorization,
        "receiptJson": json.dumps(transaction.receipt),
        "amountSet": {"presentmentMoney": {"amount": transaction.amount, "currencyCode": transaction.currency}},
    }


def graphql_refund(order: Order, refund: Refund) -> dict[str, Any]:
    """The refund as the Admin GraphQL API shows it, with what the AlipayRefund fragment selects."""
    return {
        "id": f"gid://shopify/Refund/{refund.id}",
        "note": refund.note,
        "order": {"id": order.gid, "customAttributes": [
            {"key": a["name"], "value": a["value"]} for a in order.note_attributes]},
        "transactions": {"nodes": [
            {key: value for key, value in _graphql_transaction(t).items() if key not in ("authorizationCode",
                                                                                         "receiptJson")}
            | {"parentTransaction": _graphql_transaction(order.payment) if t.parent_id else None}
            for t in refund.transactions
        ]},
    }
