"""Standard Webhooks (https://www.standardwebhooks.com) symmetric signatures.

The generic platform verifies inbound webhooks and signs its result callbacks with these; the demo's simulated
shop and the bench reuse them. The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`, the key is
the base64 part of a `whsec_...` secret and `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>`
entries, any of which may match (so a sender can rotate its secret without downtime).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from refund_adapter.plugin_api import hmac_base64, hmac_base64_matches

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300
_TIMESTAMP_DIGITS = 12  # unix seconds until the year 33658: a longer one is not a time, and int() of it is costly


class WebhookVerificationError(Exception):
    """The message is not proven to come from the secret's holder, or not recently."""


class InvalidSignatureError(WebhookVerificationError):
    """Headers missing or malformed, or no `v1` signature matches."""


class StaleTimestampError(WebhookVerificationError):
    """Correctly signed, but `webhook-timestamp` is outside the tolerance: a replay or a badly wrong clock."""


@functools.lru_cache(maxsize=1024)
def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional, as in the reference libraries)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret must be whsec_ followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    # surrogateescape: a header that is not UTF-8 arrives with its bytes escaped; sign exactly what was sent.
    return f"{msg_id}.{timestamp}.".encode("utf-8", "surrogateescape") + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message: `v1,<base64>`."""
    return "v1," + hmac_base64(decode_secret(secret), _signed_content(msg_id, str(timestamp), body))


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a sender adds to a request whose body is `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Return if one `v1` signature of `headers` matches `body` and the timestamp is within ±`tolerance` of `now`.

    The signature is checked first, so only a holder of the secret learns that its clock or replay is the
    problem. Comparisons are constant-time.
    """
    by_name = headers if isinstance(headers, CIMultiDictProxy | CIMultiDict) else CIMultiDict(headers)
    msg_id = by_name.get("webhook-id")
    timestamp = by_name.get("webhook-timestamp")
    signatures = by_name.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise InvalidSignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    key, content = decode_secret(secret), _signed_content(msg_id, timestamp, body)
    if not any(_matches(entry, key, content) for entry in signatures.split(" ")):
        raise InvalidSignatureError("no v1 signature matches")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _TIMESTAMP_DIGITS):
        raise InvalidSignatureError("webhook-timestamp must be unix seconds")
    if not msg_id.isascii():  # a header that was not even UTF-8: signed, but not an id to keep
        raise InvalidSignatureError("webhook-id must be ASCII")
    if abs(now - int(timestamp)) > tolerance:
        raise StaleTimestampError(f"webhook-timestamp {timestamp} is more than {tolerance:g} s from now")


def _matches(entry: str, key: bytes, content: bytes) -> bool:
    version, _, encoded = entry.partition(",")
    # another scheme (v1a is asymmetric) is not ours to check
    return version == "v1" and hmac_base64_matches((key,), content, encoded)
