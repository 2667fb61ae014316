"""The few WooCommerce REST API v3 calls the plugin makes, over the app's shared session.

Authentication is HTTP Basic with the consumer key and secret, or the same pair in the query string for servers
that strip the Authorization header (`auth: query`). Both need HTTPS on a real store: over plain HTTP WooCommerce
only accepts OAuth 1.0a signatures, which this plugin does not make. Redirects are never followed: aiohttp would
resend the credentials to wherever they point, and turn a POST into a GET.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import aiohttp

from refund_adapter.plugin_api import retry_after_seconds

from .mapping import MalformedResource, WooOrder, WooRefund, parse_order, parse_refund
from .settings import WooShop

T = TypeVar("T")
API_PREFIX = "/wp-json/wc/v3/"
PAGE_SIZE = 100  # the REST API's maximum per_page
_DETAIL_BYTES = 200
_REDACT_MARGIN = 512  # bytes read past the limit, so a key straddling it is still found whole and redacted
# Answers that retrying cannot fix: a request WooCommerce refuses, credentials refused, the order gone.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410})


class ShopApiError(Exception):
    """A call that did not succeed; `status` is None when no HTTP answer came (timeout, connection, bad JSON)."""

    def __init__(self, what: str, status: int | None, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{what}: {detail}")
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_STATUSES


class WooClient:
    """One store's REST API. Error messages never carry the consumer secret, even with `auth: query`."""

    def __init__(self, shop: WooShop, http: aiohttp.ClientSession) -> None:
        self._shop = shop
        self._http = http

    async def order(self, order_id: int) -> WooOrder:
        return _parsed(parse_order, await self._call("GET", f"orders/{order_id}"), f"GET orders/{order_id}")

    async def refund(self, order_id: int, refund_id: int) -> WooRefund:
        what = f"GET orders/{order_id}/refunds/{refund_id}"
        return _parsed(parse_refund, await self._call("GET", f"orders/{order_id}/refunds/{refund_id}"), what)

    async def orders_modified_after(self, moment: datetime) -> list[Any]:
        """Every order modified after `moment` (UTC), oldest first, page by page."""
        orders: list[Any] = []
        params = {
            "modified_after": moment.strftime("%Y-%m-%dT%H:%M:%S"),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "per_page": str(PAGE_SIZE),
        }
        page = 1
        while True:
            batch = await self._call("GET", "orders", params | {"page": str(page)})
            if not isinstance(batch, list):
                raise ShopApiError("GET orders", None, "the answer is not a list of orders")
            orders += batch
            if len(batch) < PAGE_SIZE:
                return orders
            page += 1

    async def webhooks(self) -> Any:
        return await self._call("GET", "webhooks", {"per_page": str(PAGE_SIZE)})

    async def add_private_note(self, order_id: int, note: str) -> Any:
        return await self._call("POST", f"orders/{order_id}/notes", body={"note": note, "customer_note": False})

    async def set_order_meta(self, order_id: int, key: str, value: Mapping[str, Any]) -> Any:
        """Upsert one meta key of the order: WooCommerce replaces a key sent without its meta id."""
        return await self._call("PUT", f"orders/{order_id}", body={"meta_data": [{"key": key, "value": value}]})

    async def _call(
        self, method: str, path: str, params: Mapping[str, str] | None = None, body: Mapping[str, Any] | None = None
    ) -> Any:
        what = f"{method} {path}"
        query = dict(params or {})
        headers = {}
        if self._shop.auth == "query":
            query |= {"consumer_key": self._shop.consumer_key, "consumer_secret": self._shop.consumer_secret}
        else:  # built by hand: aiohttp.BasicAuth is deprecated in recent aiohttp, its replacement absent from older
            pair = f"{self._shop.consumer_key}:{self._shop.consumer_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        try:
            async with self._http.request(
                method, self._shop.url + API_PREFIX + path, params=query, json=body, headers=headers,
                allow_redirects=False,
            ) as resp:
                raw = await resp.read()
                if not 200 <= resp.status < 300:
                    # Redacted before it is cut: a key cut in two by the limit would not be found and half of it kept.
                    answer = self._redact(raw[:_DETAIL_BYTES + _REDACT_MARGIN].decode(errors="replace"))
                    detail = f"HTTP {resp.status}: {answer[:_DETAIL_BYTES]}"
                    if 300 <= resp.status < 400:
                        detail += " (redirects are not followed: fix the shop's url)"
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    raise ShopApiError(what, resp.status, self._redact(detail), retry_after)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # `from None`: the original exception may show the URL, and with `auth: query` the secret in it.
            raise ShopApiError(what, None, self._redact(f"{type(exc).__name__}: {exc}")) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ShopApiError(what, None, "the answer is not JSON") from None

    def _redact(self, text: str) -> str:
        """The text without the shop's API keys (an error page may echo the URL, which holds both with `auth: query`);
        WooCommerce keeps the consumer key hashed too, so neither is for a log."""
        return text.replace(self._shop.consumer_secret, "***").replace(self._shop.consumer_key, "***")


def _parsed(parse: Callable[[Any], T], document: Any, what: str) -> T:
    """A resource from the API that does not look like WooCommerce's is the API's failure, not the webhook's."""
    try:
        return parse(document)
    except MalformedResource as exc:
        raise ShopApiError(what, None, f"unexpected answer: {exc}") from None
