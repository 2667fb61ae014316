"""Batches an operator approves at Alipay (an `ApprovalChannel`, `channel: mapi_pwd`): the signed request made at
the operator's click, what the query proves about one that was opened, and batches whose account moved to a
channel that sends them.

Exactly once rests on the batch's reference: every approval of a batch on one Beijing day carries the same one,
so a second confirmation at Alipay is refused (DUPLICATE_BATCH_NO). An approval is good on its day only; the
reference changes (the same serial, under the day's date) only when Alipay provably does not have the old one: no
approval left for it, or its query found nothing once its day was over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ..channels.base import Approval, ApprovalChannel
from ..models import Batch, BatchState
from ..money import next_beijing_midnight
from ..store import Cause
from .runtime import EngineContext

log = logging.getLogger(__name__)

# After a Beijing midnight, how long before an approval of the day before is taken for expired: a confirmation on
# its last second is recorded by then.
DAY_GRACE_SECONDS = 60.0
RELEASED_PER_STEP = 100


class ApprovalRefused(Exception):
    """No approval made: `slug` says why (the dashboard's flash, the API's problem type)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


@dataclass(frozen=True)
class ApprovalLink:
    """A batch's approval as it was made for the operator."""

    batch: Batch
    approval: Approval


async def make_approval_link(ctx: EngineContext, batch_id: int | None) -> ApprovalLink:
    """The signed request that lets the operator approve the batch at Alipay, made now, of today's Beijing day."""
    batch = None if batch_id is None else await ctx.store.get_batch(batch_id)
    if batch is None:
        raise ApprovalRefused(404, "unknown-batch", "no such batch")
    channel = ctx.channels.get(batch.account)
    if not isinstance(channel, ApprovalChannel) or batch.state is not BatchState.AWAITING_APPROVAL:
        raise ApprovalRefused(409, "not-awaiting-approval", f"batch {batch.reference} is not awaiting approval")
    now = ctx.clock()
    moment = datetime.fromtimestamp(now, UTC)
    issued = await ctx.store.issue_approval(batch.id, channel.references(moment), now,
                                            next_query_at=now + ctx.config.alipay_query.first_query_after_seconds)
    if issued is None:
        raise ApprovalRefused(409, "not-awaiting-approval", f"batch {batch.reference} is not awaiting approval")
    approval = channel.approval(issued, moment)
    if approval is None:
        ctx.signals.alipay_query.set()
        raise ApprovalRefused(409, "approval-being-checked", f"Alipay is being asked whether the approval of "
                              f"{issued.reference} was used; a new one can be made once it answers")
    log.info("batch %s: approval made (%d details)", issued.reference, len(issued.details),
             extra={"batch_reference": issued.reference})
    return ApprovalLink(issued, approval)


async def still_awaiting(ctx: EngineContext, batch: Batch, why: str, *, lapsed: bool) -> None:
    """The query of an opened approval found no result. `lapsed` (Alipay does not have the batch, and its
    reference is of a day past): it never will, and the batch waits for a new approval. Otherwise it is asked
    again on the query schedule, and once more just after the approval's day."""
    now = ctx.clock()
    cause = Cause("query", f"query of batch {batch.reference}: {why}", {"answer": why,
                                                                       "attempt": batch.query_attempts + 1})
    if lapsed:
        log.info("batch %s: its approval expired unused; a new one can be made", batch.reference)
        await ctx.store.approval_expired(batch.id, now, cause=cause)
        return
    schedule = ctx.config.alipay_query.schedule_seconds
    day_over = next_beijing_midnight(datetime.fromtimestamp(now, UTC)).timestamp() + DAY_GRACE_SECONDS
    due = min(now + schedule[min(batch.query_attempts, len(schedule) - 1)], day_over)
    await ctx.store.schedule_query(batch.id, due, now, cause=cause)


async def release_moved_accounts(ctx: EngineContext) -> int:
    """Batches waiting for approval whose account's channel now sends them (`channel: mapi`) go to the submitter
    under their own reference (the day's, when Alipay provably never had the old one). Returns how many went."""
    moved = [name for name, channel in ctx.channels.items() if not isinstance(channel, ApprovalChannel)]
    if not moved:
        return 0
    waiting = await ctx.store.approval_queue(limit=RELEASED_PER_STEP, accounts=moved)
    now = ctx.clock()
    released = 0
    for batch in waiting.batches:
        references = ctx.channels[batch.account].references(datetime.fromtimestamp(now, UTC))
        sent = await ctx.store.release_for_submit(batch.id, references, now)
        if sent is not None:
            log.info("batch %s: account %s sends without approval now: to be sent", sent.reference, sent.account)
            released += 1
    if released:
        ctx.signals.submitter.set()
    return released
