"""JSON shapes of refunds and batches for the operator's endpoints and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from ..channels.openapi.idempotency import out_request_no
from ..config import Account
from ..models import Batch, Refund, RefundRequest
from ..store import BatchOverview, JournalEntry, Summary

T = TypeVar("T")


def channel_json(request: RefundRequest, accounts: Mapping[str, Account]) -> dict[str, str | None]:
    """How a refund reaches Alipay: its account's channel (null once the account is no longer configured), and
    for OpenAPI its out_request_no, Alipay's key for it (a MAPI refund's is its batch's batch_no)."""
    account = accounts.get(request.alipay_account)
    channel = None if account is None else account.channel
    return {"channel": channel, "out_request_no": out_request_no(*request.key) if channel == "openapi" else None}


def refund_json(refund: Refund, accounts: Mapping[str, Account]) -> dict[str, Any]:
    req = refund.request
    return {
        "id": refund.id,
        "platform": req.platform,
        "shop": req.shop,
        "platform_refund_id": req.platform_refund_id,
        "order_id": req.order_id,
        "trade_no": req.trade_no,
        "amount": str(req.amount),
        "currency": req.currency,
        "reason": req.reason,
        "alipay_account": req.alipay_account,
        **channel_json(req, accounts),
        "paid_amount": None if req.paid_amount is None else str(req.paid_amount),
        "state": refund.state.value,
        "code": refund.code,
        "batch_no": refund.batch_no,
        "report_state": refund.report_state.value,
        "report_attempts": refund.report_attempts,
        "report_error": refund.report_error,
        "review": refund.review,  # why an operator must look at it (a contradicting result), or null
        "created_at": refund.created_at.isoformat(),
        "updated_at": refund.updated_at.isoformat(),
    }


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def batch_fields_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "account": batch.account,
        "batch_no": batch.batch_no,
        "state": batch.state.value,
        "code": batch.code,
        "submit_attempts": batch.submit_attempts,
        "query_attempts": batch.query_attempts,
        "created_at": batch.created_at.isoformat(),
        "sent_at": _time(batch.sent_at),
        "acknowledged_at": _time(batch.acknowledged_at),
        "notified_at": _time(batch.notified_at),
    }


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        **batch_fields_json(batch),
        "details": [
            {"refund_id": d.refund_id, "trade_no": d.trade_no, "amount": str(d.amount)} for d in batch.details
        ],
    }


async def json_list_response(items: Sequence[T], to_json: Callable[[T], Any], *, per_turn: int) -> web.Response:
    """A JSON array of `items`, serialised `per_turn` at a time with the event loop let run in between: a page
    of a thousand refunds, or of batches of a thousand details, is tens of milliseconds of serialising."""
    parts = []
    for start in range(0, len(items), per_turn):
        parts.append(json.dumps([to_json(item) for item in items[start : start + per_turn]])[1:-1])
        await asyncio.sleep(0)
    return web.Response(text="[" + ", ".join(parts) + "]", content_type="application/json")


def batch_overview_json(overview: BatchOverview) -> dict[str, Any]:
    """A batch in a list: its refunds counted by state, not listed (a batch holds up to 1000)."""
    return {**batch_fields_json(overview.batch), "refunds": dict(overview.refunds)}


def journal_json(entries: list[JournalEntry]) -> list[dict[str, Any]]:
    return [{"at": entry.at.isoformat(), "kind": entry.kind, "detail": dict(entry.detail)} for entry in entries]


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "since": summary.since.isoformat(),
        "until": summary.until.isoformat(),
        "by_state": dict(summary.by_state),
        "success_rate": summary.success_rate,
        "refunded_by_account": {account: str(amount) for account, amount in summary.refunded_by_account.items()},
        "webhook_to_reported_seconds": {"p50": summary.reported_seconds_p50, "p95": summary.reported_seconds_p95},
        "series": [{"start": start.isoformat(), "by_state": dict(counts)} for start, counts in summary.series],
    }
