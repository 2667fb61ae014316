"""The Saleor platform: `TRANSACTION_REFUND_REQUESTED` answered at once, the result reported as a transaction event.

Saleor sends the request from a Celery task and retries it only when the answer is a 5xx (saleor/webhook/
transport/synchronous/transport.py); a 4xx or a timeout becomes a failure event the merchant sees. So the webhook
is verified and mapped without calling Saleor (the keys are cached), the core stores the refund, and the answer is
`{"pspReference": ...}`, Saleor's asynchronous form: the refund stays requested until `transactionEventReport`
says REFUND_SUCCESS or REFUND_FAILURE. A redelivery is the same refund (same key) and gets the same answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
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
)

from . import report, signature
from .jwks import JwksCache, KeysUnavailable, UnknownKey
from .payload import EVENT, parse_refund_requested
from .settings import NAME, SaleorSettings, SaleorShop, shop_id

log = logging.getLogger(__name__)

API_URL_HEADER = "Saleor-Api-Url"
EVENT_HEADER = "Saleor-Event"


class SaleorPlatform:
    """`PlatformAdapter` of Saleor; `http` is the app's shared session."""

    name = NAME

    def __init__(
        self, settings: SaleorSettings, http: aiohttp.ClientSession, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._http = http
        self._keys = {
            shop.id: JwksCache(http, shop.jwks_url, max_age=settings.jwks_max_age_seconds,
                               min_refetch=settings.jwks_min_refetch_seconds, clock=clock)
            for shop in settings.shops.values()
        }

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        """Check the instance, the signature over the raw body and the event; map; answer with our reference."""
        if webhook.subpath:
            raise WebhookRejected(404, "unknown-endpoint", f"Saleor webhooks go to /webhooks/{NAME}")
        api_url = webhook.headers.get(API_URL_HEADER)
        shop = self._settings.shops.get(shop_id(api_url) or "")
        if shop is None:
            raise WebhookRejected(404, "unknown-shop", f"no Saleor instance {quote(api_url)} is configured")
        await self._verify(shop, webhook.headers.get(signature.HEADER) or "", webhook.body)
        event = webhook.headers.get(EVENT_HEADER, "")
        if event.lower() != EVENT:
            raise WebhookRejected(400, "unsupported-event", f"only {EVENT} is handled here, not {quote(event)}")
        request = parse_refund_requested(webhook.body, shop)
        answer = {"pspReference": request.context["psp_reference"]}
        return WebhookAccepted(requests=(request,), body=json.dumps(answer).encode(), content_type="application/json")

    async def _verify(self, shop: SaleorShop, claimed: str, body: bytes) -> None:
        """A JWS by a key of the instance's JWKS, or (only with a configured secret_key) the deprecated HMAC."""
        try:
            if not signature.is_jws(claimed):
                if shop.secret_key is None:
                    raise signature.SignatureError("not a JWS, and no secret_key is configured for an HMAC")
                signature.verify_hmac(shop.secret_key, claimed, body)
                return
            signature.verify_jws(claimed, body, await self._keys[shop.id].key(signature.key_id(claimed)))
        except signature.SignatureError as exc:
            raise WebhookRejected(401, "invalid-signature", f"{signature.HEADER}: {exc}") from exc
        except UnknownKey as exc:
            raise WebhookRejected(401, "unknown-key", f"the instance's JWKS has no key {quote(str(exc))}") from exc
        except KeysUnavailable as exc:  # nothing verified, nothing stored: Saleor's retry will be checked
            raise WebhookRejected(503, "keys-unavailable", f"{exc}; send it again later") from exc

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        """`transactionEventReport` REFUND_SUCCESS or REFUND_FAILURE, with the reference of the request."""
        shop = self._settings.shops.get(outcome.request.shop)
        if shop is None:
            return DeliveryResult.dead(f"Saleor instance {outcome.request.shop!r} is no longer configured")
        return await report.send(self._http, shop, outcome)

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        """Nothing: Saleor retries a request it got no answer to, and lists no refunds for an app to poll."""
        return ()

    def shops(self) -> Sequence[ShopInfo]:
        return [
            ShopInfo(
                id=shop.id,
                alipay_account=shop.alipay_account,
                extra={"jwks_url": shop.jwks_url, "signature": "jws+hmac" if shop.secret_key else "jws",
                       "jwks_fetches": str(self._keys[shop.id].fetches)},
            )
            for shop in self._settings.shops.values()
        ]
