"""A fake WooCommerce store: a real aiohttp server speaking the REST API v3 subset the plugin uses, and the
sender of its signed webhooks.

It checks the consumer key and secret (HTTP Basic, or the query string when `auth="query"`), records every
call, notes and metadata, and can be told to answer the next calls with 401, 404, 429, 5xx... (the kit's
`FakePlatform` does the recording and the scripted answers).
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from refund_adapter_woocommerce import webhook as wire

from refund_adapter.testing import FakePlatform

API = "/wp-json/wc/v3"
CONSUMER_KEY = "ck_0123456789abcdef"
CONSUMER_SECRET = "cs_fedcba9876543210"
WEBHOOK_SECRET = "wc-webhook-secret-&-quotes\""


def gmt(moment: datetime | None = None) -> str:
    """A WooCommerce `*_gmt` date: ISO 8601, whole seconds, no offset."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Call:
    method: str
    path: str  # after /wp-json/wc/v3/
    query: dict[str, str]


@dataclass
class FakeWooCommerce(FakePlatform):
    auth: str = "basic"
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900))

    # --- the store's data ----------------------------------------------------------------------------------

    def add_order(
        self,
        order_id: int,
        *,
        trade_no: str = "2026061522001412345678901234",
        total: str = "100.00",
        payment_method: str = "alipay",
        currency: str = "CNY",
    ) -> dict[str, Any]:
        order = {
            "id": order_id,
            "status": "processing",
            "currency": currency,
            "total": total,
            "payment_method": payment_method,
            "payment_method_title": payment_method.title(),
            "transaction_id": trade_no,
            "date_modified_gmt": gmt(),
            "refunds": [],
            "meta_data": [],
        }
        self.orders[order_id] = order
        return order

    def add_refund(
        self, order_id: int, amount: str, *, reason: str = "damaged", refunded_payment: bool = False,
        created: datetime | None = None,
    ) -> int:
        """A refund recorded in the admin: listed in the order (negative total), which counts as modified."""
        refund_id = next(self._ids)
        self.refunds[refund_id] = {
            "id": refund_id,
            "parent_id": order_id,
            "date_created_gmt": gmt(created),
            "amount": amount,
            "reason": reason,
            "refunded_by": 1,
            "refunded_payment": refunded_payment,
            "meta_data": [],
        }
        order = self.orders[order_id]
        order["refunds"].append({"id": refund_id, "reason": reason, "total": f"-{amount}"})
        order["date_modified_gmt"] = gmt()
        return refund_id

    def meta(self, order_id: int, key: str) -> Any:
        return next((item["value"] for item in self.orders[order_id]["meta_data"] if item["key"] == key), None)

    @property
    def calls(self) -> list[Call]:
        """Every REST call received, its path after /wp-json/wc/v3/."""
        return [Call(call.method, call.path.removeprefix(API + "/"), dict(call.query)) for call in self.received]

    def fail(self, status: int, *, method: str = "", path: str = "", times: int = 1,
             headers: dict[str, str] | None = None, body: str = '{"code": "scripted_failure"}') -> None:
        """Answer the next `times` calls of `method` (any when "") under `path` (after /wp-json/wc/v3/) with
        `status`."""
        prefix = f"{API}/{path}"
        self.answer_next(status, times, body=body, headers=headers,
                         when=lambda call: call.path.startswith(prefix) and method in ("", call.method))

    def refund_fetches(self) -> list[str]:
        return [call.path for call in self.calls if "/refunds/" in call.path]

    # --- webhooks it sends ---------------------------------------------------------------------------------

    def delivery(
        self, order_id: int, *, topic: str = wire.ORDER_UPDATED, secret: str = WEBHOOK_SECRET,
        algorithm: str = "sha256", body: bytes | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of one delivery, signed as WooCommerce signs it (trim(wp_json_encode(payload)))."""
        if body is None:
            payload = self.orders[order_id] if topic == wire.ORDER_UPDATED else {
                "action": "woocommerce_order_refunded", "arg": order_id}
            body = json.dumps(payload, separators=(",", ":")).encode()
        resource, _, event = topic.partition(".")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
            wire.SOURCE: self.url + "/",
            wire.TOPIC: topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            wire.SIGNATURE: wire.sign(secret, algorithm, body),
            wire.WEBHOOK_ID: "12",
            wire.DELIVERY_ID: f"delivery-{next(self._ids)}",
        }
        return headers, body

    async def deliver(self, session: aiohttp.ClientSession, adapter_url: str, order_id: int, **kwargs: Any) -> int:
        headers, body = self.delivery(order_id, **kwargs)
        async with session.post(f"{adapter_url}/webhooks/woocommerce", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    # --- the REST API --------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._gate)
        app.router.add_get(API + "/orders", self._list_orders)
        app.router.add_get(API + "/orders/{id}", self._get_order)
        app.router.add_put(API + "/orders/{id}", self._update_order)
        app.router.add_get(API + "/orders/{id}/refunds/{refund_id}", self._get_refund)
        app.router.add_post(API + "/orders/{id}/notes", self._add_note)
        app.router.add_get(API + "/webhooks", self._list_webhooks)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._authenticated(request):
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        return await handler(request)

    def _authenticated(self, request: web.Request) -> bool:
        if self.auth == "query":
            given = (request.query.get("consumer_key"), request.query.get("consumer_secret"))
            return given == (CONSUMER_KEY, CONSUMER_SECRET)
        expected = "Basic " + base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def _list_orders(self, request: web.Request) -> web.Response:
        after = request.query.get("modified_after", "")
        per_page, page = int(request.query.get("per_page", "10")), int(request.query.get("page", "1"))
        modified = sorted(
            (order for order in self.orders.values() if order["date_modified_gmt"] > after),
            key=lambda order: (order["date_modified_gmt"], order["id"]),
        )
        return web.json_response(modified[(page - 1) * per_page : page * per_page])

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(int(request.match_info["id"]))
        if order is None:
            return _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return web.json_response(order)

    async def _update_order(self, request: web.Request) -> web.Response:
        order = self.orders.get(int(request.match_info["id"]))
        if order is None:
            return _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        for item in (await request.json()).get("meta_data", []):
            order["meta_data"] = [meta for meta in order["meta_data"] if meta["key"] != item["key"]]
            order["meta_data"].append({"id": next(self._ids), "key": item["key"], "value": item["value"]})
        order["date_modified_gmt"] = gmt()
        return web.json_response(order)

    async def _get_refund(self, request: web.Request) -> web.Response:
        refund = self.refunds.get(int(request.match_info["refund_id"]))
        if refund is None or refund["parent_id"] != int(request.match_info["id"]):
            return _error(404, "woocommerce_rest_invalid_id", "Invalid ID.")
        return web.json_response({key: value for key, value in refund.items() if key != "parent_id"})

    async def _add_note(self, request: web.Request) -> web.Response:
        order_id = int(request.match_info["id"])
        if order_id not in self.orders:
            return _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        body = await request.json()
        note = {"id": next(self._ids), "note": body["note"], "customer_note": body.get("customer_note", False),
                "date_created_gmt": gmt()}
        self.notes.setdefault(order_id, []).append(note)
        return web.json_response(note, status=201)

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(self.webhooks)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "data": {"status": status}}, status=status)


def ping() -> tuple[dict[str, str], bytes]:
    """What WooCommerce POSTs when a webhook is saved: a form body, no X-WC-* header."""
    return {"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12"
