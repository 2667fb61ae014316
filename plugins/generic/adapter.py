"""The generic platform: any shop that can send and receive Standard Webhooks-signed JSON.

It is also the reference adapter for plugin authors: small, no platform API, every error a stable type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime

import aiohttp

from refund_adapter.plugin_api import (
    DeliveryResult,
    InboundWebhook,
    RefundOutcome,
    RefundRequest,
    ShopInfo,
    WebhookAccepted,
    WebhookRejected,
    quote,
    retry_after_seconds,
)

from . import standard_webhooks
from .payload import PLATFORM, parse_refund_request
from .settings import GenericSettings

# Answers that retrying cannot fix: our secret is refused, or the shop says the refund is gone.
_DEAD_STATUSES = frozenset({401, 403, 410})
_REASON_BYTES = 200


class GenericPlatform:
    """`PlatformAdapter` of the generic platform; `http` is the app's shared session."""

    name = PLATFORM

    def __init__(self, settings: GenericSettings, http: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._http = http

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        """Check the shop, then the signature and timestamp over the raw body, then the body itself."""
        shop = self._settings.shops.get(webhook.subpath)
        if shop is None:
            raise WebhookRejected(404, "unknown-shop", f"no generic shop {quote(webhook.subpath)} is configured")
        try:
            standard_webhooks.verify(
                shop.secret,
                webhook.headers,
                webhook.body,
                now=time.time(),
                tolerance=self._settings.tolerance_seconds,
            )
        except standard_webhooks.StaleTimestampError as exc:
            raise WebhookRejected(401, "stale-timestamp", str(exc)) from exc
        except standard_webhooks.WebhookVerificationError as exc:
            raise WebhookRejected(401, "invalid-signature", str(exc)) from exc
        return WebhookAccepted(requests=(parse_refund_request(webhook.body, shop, webhook.headers["webhook-id"]),))

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        """POST the result to the shop's callback_url, signed, with a webhook-id fixed per refund for dedup."""
        request = outcome.request
        shop = self._settings.shops.get(request.shop)
        if shop is None:
            return DeliveryResult.dead(f"generic shop {request.shop!r} is no longer configured")
        body = json.dumps(
            {
                "refund_id": request.platform_refund_id,
                "order_id": request.order_id,
                "trade_no": request.trade_no,
                "amount": f"{request.amount:.2f}",
                "status": outcome.status,
                "code": outcome.code,
                "batch_no": outcome.batch_no,
            }
        ).encode()
        headers = standard_webhooks.signed_headers(shop.secret, f"refund-{outcome.refund_id}", int(time.time()), body)
        headers["content-type"] = "application/json"
        try:
            # No redirects: aiohttp would follow one as a GET, losing the result; the operator fixes the URL.
            async with self._http.post(shop.callback_url, data=body, headers=headers, allow_redirects=False) as resp:
                if 200 <= resp.status < 300:
                    return DeliveryResult.delivered()
                reason = f"HTTP {resp.status}: {(await resp.content.read(_REASON_BYTES)).decode(errors='replace')}"
                if resp.status in _DEAD_STATUSES:
                    return DeliveryResult.dead(reason)
                return DeliveryResult.retry(reason, retry_after_seconds(resp.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return DeliveryResult.retry(f"{type(exc).__name__}: {exc}")

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        """Nothing: the generic platform has no API to poll, its shops re-send webhooks instead."""
        return ()

    def shops(self) -> Sequence[ShopInfo]:
        return [
            ShopInfo(id=shop.id, alipay_account=shop.alipay_account, extra={"callback_url": shop.callback_url})
            for shop in self._settings.shops.values()
        ]
