"""Webhook signature helpers the plugins share: an HMAC of the raw body, written in base64 or hex, and compared
in constant time against every configured secret (a shop rotating its secret signs with either for a while).

Pure functions without I/O. Keys are text secrets (Shopify, WooCommerce) or raw bytes (a decoded `whsec_`
secret of Standard Webhooks).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

Secret = str | bytes


def hmac_digest(secret: Secret, message: bytes, algorithm: str = "sha256") -> bytes:
    """`HMAC(secret, message)`; a text secret is keyed by its UTF-8 bytes."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, algorithm).digest()


def hmac_base64(secret: Secret, body: bytes, algorithm: str = "sha256") -> str:
    """`base64(HMAC(secret, body))`: the webhook signature of Shopify, WooCommerce and many others."""
    return base64.b64encode(hmac_digest(secret, body, algorithm)).decode("ascii")


def hmac_base64_matches(
    secrets: Sequence[Secret], body: bytes, signature: str | None, algorithm: str = "sha256"
) -> bool:
    """Whether `signature` is the `hmac_base64` of `body` by one of `secrets`, compared in constant time."""
    if not signature:
        return False
    try:
        claimed = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        return False
    return _any_matches(secrets, body, claimed, algorithm)


def hmac_hex_matches(secrets: Sequence[Secret], body: bytes, signature: str | None, algorithm: str = "sha256") -> bool:
    """Whether `signature` is the hexadecimal HMAC of `body` by one of `secrets` (either case), in constant time."""
    if not signature or not signature.isascii():
        return False
    try:
        claimed = bytes.fromhex(signature)
    except ValueError:
        return False
    return _any_matches(secrets, body, claimed, algorithm)


def _any_matches(secrets: Sequence[Secret], body: bytes, claimed: bytes, algorithm: str) -> bool:
    return any(hmac.compare_digest(claimed, hmac_digest(secret, body, algorithm)) for secret in secrets)
