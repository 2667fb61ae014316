"""Shopify's webhook signature: base64 HMAC-SHA256 of the raw body, keyed with the app's client secret.

Several secrets may be configured: after a rotation Shopify keeps signing with the old one for up to an hour,
so a webhook signed by any configured secret is accepted and none is dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Shopify-Hmac-Sha256"


def _digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def sign(secret: str, body: bytes) -> str:
    """The X-Shopify-Hmac-Sha256 value for `body` (what Shopify sends; tests and fakes use it too)."""
    return base64.b64encode(_digest(secret, body)).decode("ascii")


def verify(secrets: Sequence[str], header: str | None, body: bytes) -> bool:
    """Whether `header` is the signature of `body` by one of `secrets`, compared in constant time."""
    if not header:
        return False
    try:
        claimed = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return False
    return any(hmac.compare_digest(claimed, _digest(secret, body)) for secret in secrets)
