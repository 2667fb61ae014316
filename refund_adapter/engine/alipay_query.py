"""The Alipay query loop: resolves batches Alipay has not told us about by asking the batch's channel (its
query) on a growing schedule (`alipay_query` in the config), records what it proves, and hands a batch still
unresolved at the end of the schedule to an operator. (The platform poll, platform_poller.py, is the other way
round: it asks the platforms for refunds their webhooks missed.)"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from ..models import Batch, BatchState
from ..store import Cause
from .approval import release_moved_accounts, still_awaiting
from .results import record_verdicts
from .runtime import EngineContext

log = logging.getLogger(__name__)

QUERIES_PER_STEP = 20
QUERY_KIND = "query"


def next_query_delay(ctx: EngineContext, attempts: int) -> float | None:
    """Seconds until the next query after `attempts` queries, or None when the schedule is spent."""
    schedule = ctx.config.alipay_query.schedule_seconds
    return schedule[attempts] if attempts < len(schedule) else None


def _query_cause(batch: Batch, answer: str) -> Cause:
    return Cause(QUERY_KIND, f"query {batch.query_attempts + 1} of batch {batch.reference}: {answer}",
                 {"attempt": batch.query_attempts + 1, "answer": answer})


async def _reschedule_or_review(ctx: EngineContext, batch: Batch, why: str) -> None:
    now = ctx.clock()
    delay = next_query_delay(ctx, batch.query_attempts)
    if delay is None:
        log.error("batch %s unresolved after %d queries (%s): marked for review", batch.reference,
                  batch.query_attempts, why)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="UNRESOLVED",
                                        cause=_query_cause(batch, f"{why}; the schedule is spent"))
        return
    await ctx.store.schedule_query(batch.id, now + delay, now, cause=_query_cause(batch, why))


async def query_batch(ctx: EngineContext, batch: Batch) -> None:
    channel = ctx.channels.get(batch.account)
    if channel is None:
        await _reschedule_or_review(ctx, batch, "account not configured")
        return
    answer = await channel.query(batch, datetime.fromtimestamp(ctx.clock(), UTC))
    now = ctx.clock()
    if answer.mismatch is not None:
        log.error("batch %s: query answer inconsistent: %s", batch.reference, answer.mismatch)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="QUERY_MISMATCH",
                                        cause=_query_cause(batch, f"inconsistent: {answer.mismatch}"))
        return
    if answer.unresolved is not None:
        if batch.state is BatchState.AWAITING_APPROVAL:  # its approval was opened: was it confirmed?
            await still_awaiting(ctx, batch, answer.unresolved, lapsed=answer.lapsed)
            return
        if batch.state is BatchState.UNKNOWN and answer.resendable:
            # Alipay never received it and its reference is still valid: send the same batch again.
            log.warning("batch %s unknown to Alipay: resending it", batch.reference)
            await ctx.store.set_batch_state(batch.id, BatchState.PENDING, now,
                                            cause=_query_cause(batch, "unknown to Alipay: sent again"))
            ctx.signals.submitter.set()
            return
        await _reschedule_or_review(ctx, batch, answer.unresolved)
        return
    recorded = await record_verdicts(ctx, batch, answer.results, message_id=None, kind=QUERY_KIND)
    if recorded.anomalies:  # asking again would only get the same contradiction: the batch waits for an operator
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, ctx.clock(), code="QUERY_MISMATCH",
                                        cause=_query_cause(batch, "a result contradicts the record"))
        return
    settled = await ctx.store.get_batch(batch.id)
    if settled is not None and settled.state is not BatchState.COMPLETED:
        await _reschedule_or_review(ctx, batch, "some details still without a result")


async def query_once(ctx: EngineContext) -> bool:
    await release_moved_accounts(ctx)
    batches = await ctx.store.claim_batches_to_query(ctx.clock(), QUERIES_PER_STEP, ctx.config.engine.lease_seconds)
    for batch in batches:
        await query_batch(ctx, batch)
    return bool(batches)
