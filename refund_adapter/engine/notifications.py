"""Alipay's asynchronous notifies: believed only when signed by the batch's account, confirmed by
`notify_verify`, and consistent with what we sent; recorded idempotently before we answer `success`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..alipay.codec import AlipayFormatError, ResultItem, parse_dback_notify, parse_refund_notify
from ..failpoints import AFTER_NOTIFY_VERIFIED, crash_point
from ..models import Batch, DetailResult
from .channel import decode_form
from .runtime import EngineContext

log = logging.getLogger(__name__)

SUCCESS = "success"  # the exact body Alipay waits for; anything else makes it send again
FAIL = "fail"
REFUND_KIND = "refund"
DBACK_KIND = "dback"


@dataclass(frozen=True)
class NotifyAnswer:
    body: str
    reason: str  # why, for the log (never shown to the sender)

    @property
    def accepted(self) -> bool:
        return self.body == SUCCESS


def _refuse(reason: str) -> NotifyAnswer:
    log.warning("alipay notify refused: %s", reason)
    return NotifyAnswer(FAIL, reason)


def check_results(batch: Batch, items: Sequence[ResultItem]) -> list[DetailResult] | str:
    """The notify's results as DetailResults, or why they do not match the batch we sent."""
    sent: Mapping[str, Decimal] = {d.trade_no: d.amount for d in batch.details}
    results = []
    for item in items:
        trade = item.trade
        if any(result.trade_no == trade.trade_no for result in results):
            return f"trade {trade.trade_no} has two results, but batch {batch.batch_no} holds it once"
        if trade.trade_no not in sent:
            return f"trade {trade.trade_no} is not in batch {batch.batch_no}"
        if trade.amount != sent[trade.trade_no]:
            return f"trade {trade.trade_no}: amount {trade.amount} differs from the {sent[trade.trade_no]} sent"
        results.append(DetailResult(trade.trade_no, trade.amount, trade.code))
    return results


async def _authentic(ctx: EngineContext, body: bytes, batch_field: str) -> tuple[Batch, dict[str, str]] | str:
    """The batch and decoded parameters of a genuine notify, or why it is not one."""
    rough = decode_form(body, "latin-1")
    batch_no = rough.get(batch_field, "")
    batch = await ctx.store.find_batch(batch_no) if batch_no else None
    if batch is None:
        return f"unknown batch_no {batch_no!r}"
    channel = ctx.channels.get(batch.account)
    if channel is None:
        return f"batch {batch_no}: account {batch.account!r} is not configured"
    params = channel.decode_notify(body)
    if not channel.signature_ok(params):
        return f"batch {batch_no}: bad signature"
    notify_id = params.get("notify_id", "")
    if not notify_id:
        return f"batch {batch_no}: no notify_id"
    if await ctx.store.notify_seen(batch_no, notify_id, REFUND_KIND if batch_field == "batch_no" else DBACK_KIND):
        return batch, params  # a redelivery of what is already recorded: acknowledge without asking again
    if not await channel.notify_id_ok(notify_id):
        return f"batch {batch_no}: notify_verify did not confirm notify_id {notify_id}"
    return batch, params


async def handle_refund_notify(ctx: EngineContext, body: bytes) -> NotifyAnswer:
    """`batch_refund_notify`: record each detail's result, then answer `success`."""
    found = await _authentic(ctx, body, "batch_no")
    if isinstance(found, str):
        return _refuse(found)
    batch, params = found
    try:
        notify = parse_refund_notify(params)
    except AlipayFormatError as exc:
        return _refuse(f"batch {batch.batch_no}: malformed notify: {exc}")
    results = check_results(batch, notify.results)
    if isinstance(results, str):
        return _refuse(results)
    crash_point(AFTER_NOTIFY_VERIFIED)
    changes = await ctx.store.record_results(
        batch.id, results, ctx.clock(), notify_id=notify.notify_id, kind=REFUND_KIND
    )
    await ctx.announce(changes)
    log.info("alipay notify %s for batch %s: %d results, %d changes", notify.notify_id, batch.batch_no,
             len(results), len(changes))
    return NotifyAnswer(SUCCESS, "recorded")


async def handle_dback_notify(ctx: EngineContext, body: bytes) -> NotifyAnswer:
    """充退 result (money back to the buyer's card or left in their balance): verified and kept on record."""
    found = await _authentic(ctx, body, "refund_batch_no")
    if isinstance(found, str):
        return _refuse(found)
    batch, params = found
    try:
        notify = parse_dback_notify(params)
    except AlipayFormatError as exc:
        return _refuse(f"batch {batch.batch_no}: malformed dback notify: {exc}")
    if notify.trade_no not in {d.trade_no for d in batch.details}:
        return _refuse(f"dback notify: trade {notify.trade_no} is not in batch {batch.batch_no}")
    await ctx.store.record_results(batch.id, [], ctx.clock(), notify_id=notify.notify_id, kind=DBACK_KIND)
    log.info("alipay dback notify %s: batch %s trade %s status %s", notify.notify_id, batch.batch_no,
             notify.trade_no, notify.status)
    return NotifyAnswer(SUCCESS, "recorded")
