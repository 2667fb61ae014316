"""The Shopify platform: refunds/create webhooks (observer mode) and refund sessions (payments-app mode).

Observer mode. A refunds/create webhook does not carry the Alipay trade number: it lives on the refunded
(parent) transaction or on the order, which only the Admin API shows, and the webhook must be answered within
Shopify's 5 seconds without calling Shopify. So the webhook is verified and its refund id queued durably in the
plugin's data, one `due:{shop}:{refund gid}` key per refund (instances sharing a database never overwrite each
other's entries), then answered with `reconcile_soon`: the core's reconcile round that follows at once fetches the
queued refunds by id and hands the core their requests. Each round also polls a shop's recently updated orders
(at most every `poll_interval_seconds`, which never holds back the queue) for refunds whose webhooks Shopify gave
up on. Results go back as an order tag and one JSON metafield per refund transaction.

Payments-app mode. A refund session carries everything: it becomes a refund request at once (trade number from
the payment book) and is answered 201; the result goes back with refundSessionResolve or refundSessionReject.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from refund_adapter.plugin_api import (
    DeliveryResult,
    InboundWebhook,
    PluginData,
    RefundOutcome,
    RefundRequest,
    ShopInfo,
    Unpayable,
    WebhookAccepted,
    WebhookRejected,
    alipay_code_meaning,
    quote,
)

from . import graphql, signature
from .payload import parse_refund_notice, parse_refund_session
from .payments import PaymentBook
from .refunds import usable
from .settings import NAME, PAYMENTS_APP, WEBHOOK, ShopifySettings, ShopifyShop

log = logging.getLogger(__name__)

SESSION_PATH = "refund-session"  # POST /webhooks/shopify/refund-session
TOPIC = "refunds/create"
TAG_PREFIX = "alipay-refund:"
METAFIELD_NAMESPACE = "alipay_refund"
REJECTION_CODE = "PROCESSING_ERROR"  # the only RefundSessionStatusReasonRejectionCode
# Shopify will never take the result: the session is already resolved or rejected, or does not exist.
FINAL_SESSION_ERRORS = frozenset({"REFUND_SESSION_INVALID_STATE", "REFUND_SESSION_NOT_FOUND"})
FIRST_POLL_LOOKBACK_SECONDS = 86400.0  # a shop's first poll: well past Shopify's 4 hours of webhook retries
POLL_OVERLAP_SECONDS = 300.0  # each poll starts this much before the last one: search index lag, clock skew
POLL_MAX_PAGES = 10  # 50 orders a page; the rest waits for the next round
NODES_PER_QUERY = 50


class ShopifyPlatform:
    """`PlatformAdapter` of Shopify; `http` is the app's shared session, `data` the plugin's durable data."""

    name = NAME

    def __init__(
        self,
        settings: ShopifySettings,
        http: aiohttp.ClientSession,
        data: PluginData,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._http = http
        self._data = data
        self._clock = clock
        self.payments = PaymentBook(data)
        self._last_poll: dict[str, float] = {}
        # Writes that record a reconcile round's progress (queue entries done, poll cursors), made only once the
        # core has stored what the round returned: it says so by moving `since` past the round's own `since`.
        # A crash or a failed store in between repeats the work instead of losing it.
        self._staged: list[Callable[[], Awaitable[None]]] = []
        self._staged_since: datetime | None = None

    # --- receive ---------------------------------------------------------------------------------------------

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        if webhook.subpath == "":
            return await self._refund_created(webhook)
        if webhook.subpath == SESSION_PATH:
            return await self._refund_session(webhook)
        raise WebhookRejected(404, "unknown-endpoint", f"use /webhooks/{NAME} or /webhooks/{NAME}/{SESSION_PATH}")

    def _shop(self, domain: str | None) -> ShopifyShop:
        shop = self._settings.shops.get((domain or "").strip().lower())
        if shop is None:
            raise WebhookRejected(404, "unknown-shop", f"no Shopify shop {quote(domain)} is configured")
        return shop

    async def _refund_created(self, webhook: InboundWebhook) -> WebhookAccepted:
        """Verify, queue the refund id, answer: no Shopify call while Shopify waits, a reconcile round right after."""
        shop = self._shop(webhook.headers.get("X-Shopify-Shop-Domain"))
        if not signature.verify(shop.client_secrets, webhook.headers.get(signature.HEADER), webhook.body):
            raise WebhookRejected(401, "invalid-signature", f"{signature.HEADER} matches no client secret of the shop")
        topic = webhook.headers.get("X-Shopify-Topic")
        if topic != TOPIC:
            raise WebhookRejected(400, "unsupported-topic", f"only {TOPIC} is handled here, not {quote(topic)}")
        if shop.mode != WEBHOOK:
            log.info("shopify %s: refunds/create ignored, the shop's refunds come as refund sessions", shop.domain)
            return WebhookAccepted()
        notice = parse_refund_notice(webhook.body)
        if notice.pays:  # a retry or a second subscription rewrites the same key: queued once
            await self._data.put(_due_key(shop, notice.gid), json.dumps({"gid": notice.gid}))
        log.info(
            "shopify %s: refund %d %s (webhook %s, event %s)", shop.domain, notice.refund_id,
            "queued" if notice.pays else "moves no money, ignored",
            # The HMAC covers the body only: these headers are whatever the sender (or a replayer) wrote.
            quote(webhook.headers.get("X-Shopify-Webhook-Id")), quote(webhook.headers.get("X-Shopify-Event-Id")),
        )
        return WebhookAccepted(reconcile_soon=notice.pays)

    async def _refund_session(self, webhook: InboundWebhook) -> WebhookAccepted:
        """A refund session becomes a request at once; 201 with an empty body once the core has stored it."""
        header = self._settings.client_cert_header  # first: who is not Shopify learns nothing, not even the shops
        if header is None or webhook.headers.get(header) != "SUCCESS":
            raise WebhookRejected(401, "client-certificate-required", "Shopify's client certificate was not verified")
        shop = self._shop(webhook.headers.get("Shopify-Shop-Domain"))
        if shop.mode != PAYMENTS_APP:
            raise WebhookRejected(409, "not-a-payments-app-shop", f"shop {shop.domain} is in {shop.mode} mode")
        session = parse_refund_session(webhook.body)
        payment = await self.payments.find(shop.domain, session.payment_id)
        if payment is None:
            # Stored rejected, UNKNOWN_PAYMENT, and the session rejected with that code: the merchant sees it at
            # once; once the payment is imported (`refund-adapter shopify import-payments`) a new refund pays.
            log.info("shopify %s: refund session %s names payment %s, which has no recorded Alipay trade",
                     shop.domain, session.id, session.payment_id)
        request = RefundRequest(
            platform=NAME,
            shop=shop.domain,
            platform_refund_id=session.id,
            order_id=payment.order_id if payment else "",
            trade_no=payment.trade_no if payment else "",
            amount=session.amount,
            currency=session.currency,
            reason="",
            alipay_account=shop.alipay_account,
            paid_amount=payment.amount if payment else None,
            context={"mode": PAYMENTS_APP, "session_gid": session.gid, "payment_id": session.payment_id},
            rejection=None if payment else Unpayable.PAYMENT,
        )
        return WebhookAccepted(requests=(request,), status=201)

    # --- report ----------------------------------------------------------------------------------------------

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        """Write the result back: session resolve/reject, or tag and metafield on the order."""
        shop = self._settings.shops.get(outcome.request.shop)
        if shop is None:
            return DeliveryResult.dead(f"Shopify shop {outcome.request.shop!r} is no longer configured")
        try:
            if outcome.request.context.get("mode") == PAYMENTS_APP:
                return await self._finish_session(shop, outcome)
            return await self._write_back(shop, outcome)
        except graphql.ShopifyApiError as exc:
            if exc.final:
                return DeliveryResult.dead(exc.reason)
            return DeliveryResult.retry(exc.reason, exc.retry_after_seconds)

    async def _write_back(self, shop: ShopifyShop, outcome: RefundOutcome) -> DeliveryResult:
        request = outcome.request
        order_gid = request.context["order_gid"]
        result = {"status": outcome.status, "code": outcome.code, "batch_no": outcome.batch_no,
                  "amount": f"{request.amount:.2f}"}
        variables = {
            "orderId": order_gid,
            "tags": [TAG_PREFIX + outcome.status],
            "metafields": [{
                "ownerId": order_gid,
                "namespace": METAFIELD_NAMESPACE,
                "key": metafield_key(request.platform_refund_id),
                "type": "json",
                "value": json.dumps(result, sort_keys=True),
            }],
        }
        data = await graphql.call(self._http, shop.admin_graphql_url, shop.access_token, graphql.WRITE_BACK, variables)
        errors = graphql.user_errors(data.get("tagsAdd"), data.get("metafieldsSet"))
        if errors:
            return DeliveryResult.retry(f"userErrors: {graphql.describe(errors)}")
        return DeliveryResult.delivered()

    async def _finish_session(self, shop: ShopifyShop, outcome: RefundOutcome) -> DeliveryResult:
        variables: dict[str, Any] = {"id": outcome.request.context["session_gid"]}
        if outcome.succeeded:
            document, field = graphql.RESOLVE_SESSION, "refundSessionResolve"
        else:
            document, field = graphql.REJECT_SESSION, "refundSessionReject"
            variables["reason"] = {"code": REJECTION_CODE, "merchantMessage": merchant_message(outcome)}
        data = await graphql.call(self._http, shop.payments_graphql_url, shop.access_token, document, variables)
        errors = graphql.user_errors(data.get(field))
        if not errors:
            return DeliveryResult.delivered()
        if any(error.get("code") in FINAL_SESSION_ERRORS for error in errors):
            return DeliveryResult.dead(f"Shopify will not take the {field}: {graphql.describe(errors)}")
        return DeliveryResult.retry(f"userErrors: {graphql.describe(errors)}")

    # --- reconcile -------------------------------------------------------------------------------------------

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        """Queued webhook refunds, every round, then (per shop, rate-limited) refunds of recently updated orders.

        Only the poll waits for `poll_interval_seconds`: the queue is fetched in each round, including the one a
        webhook's `reconcile_soon` starts at once, and those extra rounds do not make the poll more frequent.
        `since` only tells whether the last round's requests were stored (it moved on): its progress is recorded
        then. Each shop's poll cursor is kept in the plugin's data, so it survives restarts.
        """
        staged, self._staged = self._staged, []
        if since is not None and (self._staged_since is None or since > self._staged_since):
            for write in staged:
                await write()
        self._staged_since = since
        found: list[RefundRequest] = []
        for shop in self._settings.shops.values():
            if shop.mode != WEBHOOK:
                continue  # refund sessions cannot be polled: Shopify retries them itself
            try:
                found += await self._fetch_due(shop)
                if self._poll_is_due(shop):
                    found += await self._poll(shop)
            except graphql.ShopifyApiError as exc:
                log.warning("shopify %s: reconcile failed, tried again next round: %s", shop.domain, exc.reason)
            except (KeyError, TypeError):  # an answer of another shape: the other shops still get their round
                log.exception("shopify %s: unexpected answer from the Admin API; tried again next round", shop.domain)
        return found

    async def _fetch_due(self, shop: ShopifyShop) -> list[RefundRequest]:
        """The queued refunds from the Admin API; only the keys read here are deleted later, so a refund queued
        meanwhile (by this instance or another) stays for the next round."""
        due = await self._data.items(_due_prefix(shop))
        gids = [json.loads(value)["gid"] for value in due.values()]
        requests: list[RefundRequest] = []
        for start in range(0, len(gids), NODES_PER_QUERY):
            data = await self._query(shop, graphql.REFUNDS_BY_ID, {"ids": gids[start : start + NODES_PER_QUERY]})
            requests += usable(shop, [node for node in data.get("nodes") or () if node])
        if due:
            self._staged.append(lambda: self._data.delete(list(due)))
        return requests

    def _poll_is_due(self, shop: ShopifyShop) -> bool:
        last = self._last_poll.get(shop.domain)
        return last is None or self._clock() - last >= shop.poll_interval_seconds

    async def _poll(self, shop: ShopifyShop) -> list[RefundRequest]:
        """Refunds of orders updated since the shop's cursor, oldest first, up to POLL_MAX_PAGES pages."""
        started = self._last_poll[shop.domain] = self._clock()
        stored = await self._data.get(_cursor_key(shop))
        cursor = stored or _iso(started - FIRST_POLL_LOOKBACK_SECONDS)
        variables: dict[str, Any] = {"query": f"updated_at:>='{cursor}'", "after": None}
        requests: list[RefundRequest] = []
        next_cursor = cursor
        for _ in range(POLL_MAX_PAGES):
            orders = (await self._query(shop, graphql.RECENT_ORDERS, variables))["orders"]
            for order in orders["nodes"]:
                requests += usable(shop, order["refunds"])
                next_cursor = order["updatedAt"]  # oldest first: where a capped poll goes on from
            if not orders["pageInfo"]["hasNextPage"]:
                next_cursor = _iso(started - POLL_OVERLAP_SECONDS)
                break
            variables["after"] = orders["pageInfo"]["endCursor"]
        self._staged.append(lambda: self._data.put(_cursor_key(shop), next_cursor))
        return requests

    async def _query(self, shop: ShopifyShop, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        return await graphql.call(self._http, shop.admin_graphql_url, shop.access_token, document, variables)

    def shops(self) -> Sequence[ShopInfo]:
        return [
            ShopInfo(
                id=shop.domain,
                alipay_account=shop.alipay_account,
                extra={"mode": shop.mode, "trade_no_source": str(shop.trade_no_source), "api_url": shop.api_base_url},
            )
            for shop in self._settings.shops.values()
        ]


def metafield_key(platform_refund_id: str) -> str:
    """`929361464:1072844685` -> `refund-929361464-1072844685` (metafield keys allow letters, digits, - and _)."""
    return "refund-" + platform_refund_id.replace(":", "-")


def merchant_message(outcome: RefundOutcome) -> str:
    """What the merchant reads on a rejected refund session: the code (Alipay's, or ours such as
    EXCEEDS_PAID_AMOUNT when the refund never reached Alipay), its meaning when Alipay documents it, the batch."""
    code = outcome.code or "UNKNOWN"
    known = alipay_code_meaning(code)
    meaning = f" ({known})" if known else ""
    batch = f", Alipay batch {outcome.batch_no}" if outcome.batch_no else ""
    return f"Refund not paid through Alipay: {code}{meaning}{batch}"


def _due_prefix(shop: ShopifyShop) -> str:
    return f"due:{shop.domain}:"


def _due_key(shop: ShopifyShop, gid: str) -> str:
    """One key per queued refund: each webhook's write is an upsert of its own, never a rewrite of a shared list."""
    return _due_prefix(shop) + gid


def _cursor_key(shop: ShopifyShop) -> str:
    return f"cursor:{shop.domain}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
