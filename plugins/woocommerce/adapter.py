"""The WooCommerce platform: refunds from order webhooks, results written back, lost events recovered.

WooCommerce has no refund topic and never redelivers a failed webhook, so the adapter remembers which refunds
of an order it has decided on (to fetch only new ones), and polls each store for orders modified since its last
poll, whatever the webhooks did: the poll alone is enough to find every refund.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from refund_adapter.plugin_api import (
    CURRENCY,
    DeliveryResult,
    InboundWebhook,
    PluginData,
    RefundOutcome,
    RefundRequest,
    ShopInfo,
    WebhookAccepted,
    WebhookRejected,
    json_object,
    quote,
)

from . import webhook as wire
from .api import ShopApiError, WooClient
from .mapping import (
    MAX_ID,
    NAME,
    MalformedResource,
    Skipped,
    WooOrder,
    WooRefund,
    map_refund,
    order_skipped,
    parse_order,
)
from .settings import WooSettings, WooShop, shop_id

log = logging.getLogger(__name__)

# Polls look back this far before the last poll: our clock and the store's may differ, and an order saved just
# before a poll may become visible just after it. Refunds found twice are deduplicated by the core.
POLL_OVERLAP = timedelta(minutes=10)


class WooCommercePlatform:
    """`PlatformAdapter` of WooCommerce; `http` is the app's shared session, `data` this plugin's durable data."""

    name = NAME

    def __init__(
        self,
        settings: WooSettings,
        http: aiohttp.ClientSession,
        data: PluginData,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._data = data
        self._clock = clock
        self._next_poll: dict[str, float] = {}
        # Per shop: the `since` the core passed to the poll, and the moment the poll started. It becomes the
        # durable cursor only once the core's `since` has moved past it, i.e. once the poll's refunds are stored.
        self._uncommitted: dict[str, tuple[datetime | None, datetime]] = {}
        self._webhook_status: dict[str, str] = {}
        for shop in settings.shops.values():
            if urlsplit(shop.url).scheme == "http":
                log.warning(
                    "woocommerce %s: url is plain http; a real store accepts API keys only over https", shop.id
                )

    # --- webhooks ------------------------------------------------------------------------------------------

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        """Answer the creation ping; check the source and signature; then fetch the order's new refunds."""
        if wire.is_ping(webhook.headers, webhook.body):
            return WebhookAccepted()
        source = webhook.headers.get(wire.SOURCE, "")
        shop = self._settings.shops.get(shop_id(source) or "")
        if shop is None:
            raise WebhookRejected(404, "unknown-shop", f"no WooCommerce store {quote(source)} is configured")
        signature = webhook.headers.get(wire.SIGNATURE)
        if not wire.signature_matches(shop.webhook_secret, shop.signature_algorithm, webhook.body, signature):
            raise WebhookRejected(401, "invalid-signature", f"{wire.SIGNATURE} does not match the body")
        topic = webhook.headers.get(wire.TOPIC, "")
        if topic not in wire.REFUND_TOPICS:
            log.info("woocommerce %s: ignored a %s webhook (refunds come with %s)", shop.id, quote(topic),
                     wire.ORDER_UPDATED)
            return WebhookAccepted()
        document = json_object(webhook.body, allow_nan=True)
        context = {"via": "webhook", "delivery_id": wire.delivery_id(webhook.headers)}
        client = WooClient(shop, self._http)
        try:
            if topic == wire.ORDER_UPDATED:
                order = _order_from_payload(document)
            else:  # the action topic names the order only
                order = await client.order(_action_order_id(document))
            requests = await self._requests(shop, client, order, context, new_only=True)
        except ShopApiError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:  # the store's own webhook names what its API does not have
                raise WebhookRejected(
                    422, "not-found-in-store", f"{exc}; the store's refunds will be found by the next poll"
                ) from exc
            raise WebhookRejected(
                502, "shop-api-error", f"{exc}; the store's refunds will be found by the next poll"
            ) from exc
        return WebhookAccepted(requests=tuple(requests))

    async def _requests(
        self, shop: WooShop, client: WooClient, order: WooOrder, context: dict[str, Any], *, new_only: bool
    ) -> list[RefundRequest]:
        """Refund requests for `order`'s refunds (only those never decided on, when `new_only`).

        Each decision is remembered before the core stores the requests: should that fail, the poll, which
        ignores what is remembered, still finds them.
        """
        if not order.refund_ids:  # most updates: an unpaid order has no trade number yet, and nothing to say
            return []
        skipped = order_skipped(shop, order)
        if skipped is not None:
            _log_skip(shop, order.id, None, skipped)
            return []
        refund_ids = [
            refund_id
            for refund_id in order.refund_ids
            if not new_only or await self._data.get(_decided_key(shop, order.id, refund_id)) is None
        ]
        if not refund_ids:
            return []
        # Concurrently, and every fetch awaited even when one fails: no task is left behind.
        fetched = await asyncio.gather(*(client.refund(order.id, rid) for rid in refund_ids), return_exceptions=True)
        refunds: list[WooRefund] = []
        for result in fetched:
            if isinstance(result, BaseException):
                raise result
            refunds.append(result)
        since = await self._since(shop)
        requests: list[RefundRequest] = []
        decided: dict[str, str] = {}
        for refund in refunds:
            decision = map_refund(shop, order, refund, since=since, context=context)
            if isinstance(decision, Skipped):
                _log_skip(shop, order.id, refund.id, decision)
                decided[_decided_key(shop, order.id, refund.id)] = f"skipped: {decision.reason}"
            else:
                requests.append(decision)
                decided[_decided_key(shop, order.id, refund.id)] = "requested"
        await self._data.put_many(decided)
        return requests

    async def _since(self, shop: WooShop) -> datetime:
        """The first moment whose refunds are ours: configured, or when the adapter first heard of the shop.

        Refunds created earlier were paid back some other way; an order updated later still lists them.
        """
        if shop.refunds_since is not None:
            return shop.refunds_since
        key = f"since:{shop.id}"
        stored = await self._data.get(key)
        if stored is not None:
            return datetime.fromisoformat(stored)
        first = self._now().replace(microsecond=0)
        await self._data.put(key, first.isoformat())
        return first

    # --- results -------------------------------------------------------------------------------------------

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        """A private order note and `_alipay_refund_<refund id>` order metadata; safe to repeat.

        The note is posted once (remembered in the plugin's data); the metadata is an upsert.
        """
        request = outcome.request
        shop = self._settings.shops.get(request.shop)
        if shop is None:
            return DeliveryResult.dead(f"WooCommerce store {request.shop!r} is no longer configured")
        refund_id = request.context["refund_id"]
        order_id = int(request.order_id)
        result = {
            "status": outcome.status,
            "code": outcome.code,
            "batch_no": outcome.batch_no,
            "amount": f"{request.amount:.2f}",
            "trade_no": request.trade_no,
        }
        client = WooClient(shop, self._http)
        note_key = f"note:{shop.id}:{request.platform_refund_id}"
        try:
            if await self._data.get(note_key) is None:
                await client.add_private_note(order_id, _note(refund_id, result))
                await self._data.put(note_key, "posted")
            await client.set_order_meta(order_id, f"_alipay_refund_{refund_id}", result)
        except ShopApiError as exc:
            if exc.permanent:
                return DeliveryResult.dead(str(exc))
            return DeliveryResult.retry(str(exc), exc.retry_after)
        return DeliveryResult.delivered()

    # --- recovery ------------------------------------------------------------------------------------------

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        """Poll each store that is due for orders modified since its last stored poll, and check its webhooks.

        `since` is the core's: it moves only once a round's requests are stored, which is when a poll's start
        becomes the store's durable cursor.
        """
        now = self._clock()
        found: list[RefundRequest] = []
        for shop in self._settings.shops.values():
            await self._commit_cursor(shop, since)
            if now < self._next_poll.get(shop.id, 0.0):
                continue
            self._next_poll[shop.id] = now + shop.poll_interval_seconds
            client = WooClient(shop, self._http)
            await self._check_webhooks(shop, client)
            try:
                found += await self._poll(shop, client, since)
            except ShopApiError as exc:
                if exc.retry_after is not None:
                    self._next_poll[shop.id] = now + max(shop.poll_interval_seconds, exc.retry_after)
                log.warning("woocommerce %s: polling for refunds failed, tried again later: %s", shop.id, exc)
        return found

    async def _poll(self, shop: WooShop, client: WooClient, since: datetime | None) -> list[RefundRequest]:
        started = self._now()
        stored = await self._data.get(f"cursor:{shop.id}")
        cursor = datetime.fromisoformat(stored) if stored is not None else await self._since(shop)
        found: list[RefundRequest] = []
        for document in await client.orders_modified_after(cursor - POLL_OVERLAP):
            try:
                order = parse_order(document)
            except MalformedResource as exc:
                log.warning("woocommerce %s: skipped an order the API listed: %s", shop.id, exc)
                continue
            found += await self._requests(shop, client, order, {"via": "poll"}, new_only=False)
        self._uncommitted[shop.id] = (since, started)
        return found

    async def _commit_cursor(self, shop: WooShop, since: datetime | None) -> None:
        pending = self._uncommitted.pop(shop.id, None)
        if pending is None or since is None:
            return
        polled_with, started = pending
        if polled_with is None or since > polled_with:
            await self._data.put(f"cursor:{shop.id}", started.isoformat())

    async def _check_webhooks(self, shop: WooShop, client: WooClient) -> None:
        """Surface a webhook WooCommerce disabled: only the operator can turn it back on."""
        try:
            status = wire.subscription_status(await client.webhooks())
        except ShopApiError as exc:
            status = f"unknown: {exc}"
        self._webhook_status[shop.id] = status
        if status != "active":
            log.warning(
                "woocommerce %s: webhook to %s is %s; until an active order.updated webhook delivers here, "
                "refunds are found only by polling every %.0f s (WooCommerce > Settings > Advanced > Webhooks)",
                shop.id, wire.DELIVERY_PATH, status, shop.poll_interval_seconds,
            )

    def shops(self) -> Sequence[ShopInfo]:
        return [
            ShopInfo(
                id=shop.id,
                alipay_account=shop.alipay_account,
                extra={"url": shop.url, "webhook_status": self._webhook_status.get(shop.id, "not checked yet")},
            )
            for shop in self._settings.shops.values()
        ]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def _decided_key(shop: WooShop, order_id: int, refund_id: int) -> str:
    return f"refund:{shop.id}:{order_id}:{refund_id}"


def _log_skip(shop: WooShop, order_id: int, refund_id: int | None, skipped: Skipped) -> None:
    """Warn when the operator should look; orders paid otherwise are routine, so only debug."""
    if refund_id is None:
        what, routine = f"order {order_id}", logging.DEBUG
    else:
        what, routine = f"refund {refund_id} of order {order_id}", logging.INFO
    log.log(logging.WARNING if skipped.warn else routine, "woocommerce %s: %s skipped: %s", shop.id, what,
            skipped.reason)


def _note(refund_id: int, result: dict[str, Any]) -> str:
    return (
        f"Alipay refund {result['status']} for refund #{refund_id}: {result['amount']} {CURRENCY}, "
        f"code {result['code'] or '-'}, batch_no {result['batch_no'] or '-'}, trade {result['trade_no']}"
    )


def _order_from_payload(document: dict[str, Any]) -> WooOrder:
    try:
        return parse_order(document)
    except MalformedResource as exc:
        raise WebhookRejected(400, "malformed-body", f"not an order: {exc}") from exc


def _action_order_id(document: dict[str, Any]) -> int:
    arg = document.get("arg")
    if isinstance(arg, str) and arg.isascii() and arg.isdigit() and len(arg) <= len(str(MAX_ID)):
        arg = int(arg)  # bounded first: int() refuses (ValueError) past 4300 digits
    if isinstance(arg, bool) or not isinstance(arg, int) or not 0 < arg < MAX_ID:
        raise WebhookRejected(400, "malformed-body", "arg must be the refunded order's id")
    return arg
