"""Shopify's webhook signature: base64 HMAC-SHA256 of the raw body, keyed with the app's client secret.

Several secrets may be configured: after a rotation Shopify keeps signing with the old one for up to an hour,
so a webhook signed by any configured secret is accepted and none is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from refund_adapter.plugin_api import hmac_base64, hmac_base64_matches

HEADER = "X-Shopify-Hmac-Sha256"


def sign(secret: str, body: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value for `body` (what Shopify sends; tests and fakes use it too)."""
    return hmac_base64(secret, body)


def verify(secrets: Sequence[str], header: str | None, body: bytes) -> bool:
    """Whether `header` is the signature of `body` by one of `secrets`, compared in constant time."""
    return hmac_base64_matches(secrets, body, header)
