"""`out_request_no`: the refund's idempotency key at Alipay, derived from the refund's own key.

Alipay executes a refund once per (trade, out_request_no), and the same out_request_no sent again answers
`fund_change=N` instead of paying twice. So it must be the same on every send of the same refund, after any
retry, crash or re-batching, and different for two refunds of one trade. It is derived from (platform, shop,
platform refund id), which the store keeps unique, not from a row id or a batch. The digest keeps it within
String(64) and letters and digits whatever the platform's ids hold. Pure.
"""

from __future__ import annotations

import hashlib
import json

PREFIX = "RA"  # says whose request it is in Alipay's records
DIGEST_CHARS = 40  # 160 bits of SHA-256: no two refunds of one trade will share one


def out_request_no(platform: str, shop: str, platform_refund_id: str) -> str:
    """`RA` + 40 hex digits; JSON keeps ("a|b", "c") and ("a", "b|c") apart."""
    key = json.dumps([platform, shop, platform_refund_id], ensure_ascii=False, separators=(",", ":"))
    return PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:DIGEST_CHARS]
