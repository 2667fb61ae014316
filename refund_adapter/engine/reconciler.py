"""Resolves batches Alipay has not told us about: queries `refund_fastpay_query` on a growing schedule,
records what it proves, and hands a batch still unresolved at the end of the schedule to an operator."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ..channels.mapi.batch_no import batch_no_date
from ..models import Batch, BatchState
from ..money import beijing_now
from ..store import Cause
from .approval import release_moved_accounts, still_awaiting
from .notifications import check_results
from .results import record_verdicts
from .runtime import EngineContext

log = logging.getLogger(__name__)

QUERIES_PER_STEP = 20
QUERY_KIND = "query"
NOT_FOUND_CODES = frozenset({"REFUND_NOT_EXIST", "BATCH_NO_NOT_EXIST", "TRADE_NOT_EXISTS"})


def next_query_delay(ctx: EngineContext, attempts: int) -> float | None:
    """Seconds until the next query after `attempts` queries, or None when the schedule is spent."""
    schedule = ctx.config.reconciler.schedule_seconds
    return schedule[attempts] if attempts < len(schedule) else None


def _query_cause(batch: Batch, answer: str) -> Cause:
    return Cause(QUERY_KIND, f"query {batch.query_attempts + 1} of batch {batch.batch_no}: {answer}",
                 {"attempt": batch.query_attempts + 1, "answer": answer})


async def _reschedule_or_review(ctx: EngineContext, batch: Batch, why: str) -> None:
    now = ctx.clock()
    delay = next_query_delay(ctx, batch.query_attempts)
    if delay is None:
        log.error("batch %s unresolved after %d queries (%s): marked for review", batch.batch_no,
                  batch.query_attempts, why)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="UNRESOLVED",
                                        cause=_query_cause(batch, f"{why}; the schedule is spent"))
        return
    await ctx.store.schedule_query(batch.id, now + delay, now, cause=_query_cause(batch, why))


async def reconcile_batch(ctx: EngineContext, batch: Batch) -> None:
    channel = ctx.channels.get(batch.account)
    if channel is None:
        await _reschedule_or_review(ctx, batch, "account not configured")
        return
    outcome = await channel.query(batch.batch_no)
    response = outcome.response
    awaiting = batch.state is BatchState.AWAITING_APPROVAL  # its approval link was opened: was it confirmed?
    if response is None:
        if awaiting:
            await still_awaiting(ctx, batch, f"query unanswered: {outcome.detail}", absent=False)
        else:
            await _reschedule_or_review(ctx, batch, f"query unanswered: {outcome.detail}")
        return
    now = ctx.clock()
    if not response.is_success or not response.items:
        today = beijing_now(datetime.fromtimestamp(now, UTC)).date()
        not_found = response.error_code in NOT_FOUND_CODES or (response.is_success and not response.items)
        if awaiting:
            await still_awaiting(ctx, batch, f"query answered {response.error_code or 'no items'}", absent=not_found)
            return
        if batch.state is BatchState.UNKNOWN and not_found and batch_no_date(batch.batch_no) == today:
            # Alipay never received it and the batch_no is still valid today: send the same batch_no again.
            log.warning("batch %s unknown to Alipay: resending it", batch.batch_no)
            await ctx.store.set_batch_state(batch.id, BatchState.PENDING, now,
                                            cause=_query_cause(batch, "unknown to Alipay: sent again"))
            ctx.signals.submitter.set()
            return
        await _reschedule_or_review(ctx, batch, f"query answered {response.error_code or 'no items'}")
        return
    ours = [item.result for item in response.items if item.batch_no == batch.batch_no]
    results = check_results(batch, ours)
    if isinstance(results, str):
        log.error("batch %s: query answer inconsistent: %s", batch.batch_no, results)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="QUERY_MISMATCH",
                                        cause=_query_cause(batch, f"inconsistent: {results}"))
        return
    recorded = await record_verdicts(ctx, batch, results, notify_id=None, kind=QUERY_KIND)
    if recorded.anomalies:  # asking again would only get the same contradiction: the batch waits for an operator
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, ctx.clock(), code="QUERY_MISMATCH",
                                        cause=_query_cause(batch, "a result contradicts the record"))
        return
    settled = await ctx.store.get_batch(batch.id)
    if settled is not None and settled.state is not BatchState.COMPLETED:
        await _reschedule_or_review(ctx, batch, "some details still without a result")


async def reconcile_once(ctx: EngineContext) -> bool:
    await release_moved_accounts(ctx)
    batches = await ctx.store.claim_batches_to_query(ctx.clock(), QUERIES_PER_STEP, ctx.config.engine.lease_seconds)
    for batch in batches:
        await reconcile_batch(ctx, batch)
    return bool(batches)
