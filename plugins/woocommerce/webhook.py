"""What WooCommerce's webhook deliveries look like on the wire (core `class-wc-webhook.php`), with no I/O.

The signature is `base64(HMAC(secret, raw body))`, SHA-256 unless the shop's `woocommerce_webhook_hash_algorithm`
filter says otherwise. The creation ping is a form body `webhook_id=<N>` with no X-WC-* header at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from refund_adapter.plugin_api import hmac_base64, hmac_base64_matches

SOURCE = "X-WC-Webhook-Source"
TOPIC = "X-WC-Webhook-Topic"
SIGNATURE = "X-WC-Webhook-Signature"
DELIVERY_ID = "X-WC-Webhook-Delivery-ID"
WEBHOOK_ID = "X-WC-Webhook-ID"

ORDER_UPDATED = "order.updated"
ORDER_REFUNDED = "action.woocommerce_order_refunded"  # payload {"action": ..., "arg": <order id>}
REFUND_TOPICS = (ORDER_UPDATED, ORDER_REFUNDED)
DELIVERY_PATH = "/webhooks/woocommerce"

_PING = re.compile(rb"webhook_id=[0-9]+")
_DELIVERY_ID = re.compile(r"[0-9A-Za-z._:-]{1,64}")  # WooCommerce sends a hash of the delivery (32 hex digits)


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """The delivery WooCommerce sends when a webhook is saved: it wants exactly 200 and nothing else."""
    return SIGNATURE not in headers and _PING.fullmatch(body.strip()) is not None


def delivery_id(headers: Mapping[str, str]) -> str:
    """The delivery's id, kept with its refunds for tracing; "" unless it looks like one. The signature covers
    the body only, so the header is whatever the sender (or a replayer) wrote: never kilobytes stored per refund.
    """
    value = headers.get(DELIVERY_ID, "")
    return value if _DELIVERY_ID.fullmatch(value) else ""


def sign(secret: str, algorithm: str, body: bytes) -> str:
    """The X-WC-Webhook-Signature of `body`, as WooCommerce computes it."""
    return hmac_base64(secret, body, algorithm)


def signature_matches(secret: str, algorithm: str, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is the base64 HMAC of the raw `body`; constant-time."""
    return hmac_base64_matches((secret,), body, signature, algorithm)


def subscription_status(webhooks: Any) -> str:
    """Whether the store's webhooks to us work (GET /webhooks): "active", "missing", or which ones are not.

    WooCommerce disables a webhook after consecutive failed deliveries (the 7th, by default) and never retries;
    only the operator can turn it back on.
    """
    ours = [
        hook
        for hook in (webhooks if isinstance(webhooks, list) else [])
        if isinstance(hook, dict)
        and hook.get("topic") in REFUND_TOPICS
        and urlsplit(str(hook.get("delivery_url", ""))).path.rstrip("/").endswith(DELIVERY_PATH)
    ]
    if not ours:
        return "missing"
    idle = [hook for hook in ours if hook.get("status") != "active"]
    if not idle:
        return "active"
    return ", ".join(f"webhook {hook.get('id')} ({hook.get('topic')}) {hook.get('status')}" for hook in idle)
