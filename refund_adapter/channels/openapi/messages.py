"""The two calls the channel makes, as signed form parameters: `alipay.trade.refund` and
`alipay.trade.fastpay.refund.query` (§9 of the protocol reference). Pure: no I/O.

Common parameters: app_id, method, format=JSON, charset, sign_type, timestamp (Beijing time,
`yyyy-MM-dd HH:mm:ss`), version=1.0, optional app_auth_token (a service provider acting for a merchant), and
biz_content, the call's own fields as compact JSON. Amounts are yuan with two decimals, written from Decimal.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .signing import CHARSET, Signer

METHOD_REFUND = "alipay.trade.refund"
METHOD_REFUND_QUERY = "alipay.trade.fastpay.refund.query"
BEIJING = ZoneInfo("Asia/Shanghai")
MAX_REASON_CHARS = 256  # refund_reason: String(256)


@dataclass(frozen=True)
class App:
    """Who calls: the app and, for a service provider, the merchant's authorisation."""

    app_id: str
    app_auth_token: str | None = None


def biz_json(fields: Mapping[str, Any]) -> str:
    """biz_content as Alipay's SDKs write it: compact, non-ASCII kept as it is."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def clean_reason(text: str) -> str:
    """A reason as refund_reason carries it: control characters as spaces, runs of spaces as one, at most
    String(256). JSON carries any other character, so a memo never blocks a refund."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())[:MAX_REASON_CHARS]


def refund_biz(trade_no: str, amount: Decimal, out_request_no: str, reason: str) -> dict[str, str]:
    """One refund of one trade; `out_request_no` makes a resend the same refund, never a second one.
    The reason is optional (dropped when empty)."""
    biz = {"trade_no": trade_no, "refund_amount": f"{amount:.2f}", "out_request_no": out_request_no}
    if reason := clean_reason(reason):
        biz["refund_reason"] = reason
    return biz


def query_biz(trade_no: str, out_request_no: str) -> dict[str, Any]:
    """What became of the refund `out_request_no` of the trade (`gmt_refund_pay` asks for its time)."""
    return {"trade_no": trade_no, "out_request_no": out_request_no, "query_options": ["gmt_refund_pay"]}


def request_params(app: App, method: str, biz: Mapping[str, Any], now: datetime, sign_type: str) -> dict[str, str]:
    """The unsigned parameters of one call (`now` must be aware; it is written in Beijing time)."""
    params = {
        "app_id": app.app_id,
        "method": method,
        "format": "JSON",
        "charset": CHARSET,
        "sign_type": sign_type,
        "timestamp": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "version": "1.0",
        "biz_content": biz_json(biz),
    }
    if app.app_auth_token:
        params["app_auth_token"] = app.app_auth_token
    return params


def signed_request(app: App, method: str, biz: Mapping[str, Any], now: datetime, signer: Signer) -> dict[str, str]:
    """The parameters to post, `sign` included."""
    return signer.sign_params(request_params(app, method, biz, now, signer.sign_type))
