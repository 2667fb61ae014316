"""`Saleor-Signature`, checked over the raw body with no I/O (the keys come from `jwks.py`).

Saleor signs each webhook with `api_jws.encode(body, key, "RS256", headers={"kid": ..., "crit": ["b64"]},
is_payload_detached=True)` (saleor/core/jwt_manager.py): a JWS whose payload is left out and, as RFC 7797's
`"b64": false` says, signed as the raw body bytes, not their base64url. PyJWT, the library Saleor signs with,
verifies it: a JWS that does not declare `b64: false` is refused, since its signature would not cover the body.
When the webhook has a `secretKey`, Saleor sends the deprecated hex HMAC-SHA256 of the body instead
(saleor/webhook/transport/__init__.py `signature_for_payload`).

PyJWT is imported by the functions that use it, at the first Saleor webhook: importing it loads cryptography
(about 9 MB), which serve's engine process, and every adapter without a Saleor shop, never needs (see
docs/performance.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from refund_adapter.plugin_api import hmac_hex_matches

HEADER = "Saleor-Signature"
ALGORITHM = "RS256"
MAX_SIGNATURE_CHARS = 4096  # an RS256 JWS with a 4096-bit key is under 1,000 characters


class SignatureError(Exception):
    """The signature is malformed, or does not prove the body came from the holder of the key."""


def is_jws(signature: str) -> bool:
    """Whether `signature` is a (detached) JWS rather than the deprecated hex HMAC."""
    return "." in signature


def key_id(signature: str) -> str:
    """The `kid` of a JWS's protected header, read before verifying it, to pick the key that must verify it."""
    if len(signature) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"the signature is longer than {MAX_SIGNATURE_CHARS} characters")
    import jwt

    try:
        header = jwt.get_unverified_header(signature)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"not a JWS: {exc}") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("the JWS header names no key (kid)")
    return kid


def verify_jws(signature: str, body: bytes, key: Any) -> None:
    """Return if `signature` is an RS256 JWS of the raw `body` by `key` (a public key from `public_keys`)."""
    import jwt
    from jwt.api_jws import decode_complete

    try:
        decode_complete(signature, key, algorithms=[ALGORITHM], detached_payload=body)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"the JWS does not verify: {exc}") from exc


def verify_hmac(secret_key: str, signature: str, body: bytes) -> None:
    """Return if `signature` is the hex HMAC-SHA256 of `body` by the webhook's `secretKey` (constant-time)."""
    if not hmac_hex_matches((secret_key,), body, signature):
        raise SignatureError("the HMAC does not match the body")


def public_keys(jwks: bytes) -> dict[str, Any]:
    """The RS256 signing keys of a JWKS document, by `kid`; keys of another type or use are left out."""
    import jwt

    try:
        document = json.loads(jwks)
    except ValueError as exc:
        raise SignatureError(f"the JWKS is not JSON: {exc}") from exc
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise SignatureError("the JWKS has no keys list")
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(dict(entry), ALGORITHM).key
        except jwt.PyJWTError:
            continue  # an unusable key verifies nothing; the others still do
    return keys
