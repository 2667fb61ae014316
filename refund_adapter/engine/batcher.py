"""Groups received refunds into batches per Alipay account: full batches at once, others after max_wait."""

from __future__ import annotations

from datetime import UTC, datetime

from ..channels.base import ApprovalChannel
from ..failpoints import AFTER_BATCH_CREATED, crash_point
from ..models import RefundState
from ..store import StateChange
from .runtime import EngineContext


async def batch_once(ctx: EngineContext) -> bool:
    """Create at most one batch; True when one was created (there may be more to do)."""
    now = ctx.clock()
    settings = ctx.config.batching
    for work in await ctx.store.pending_work():
        if work.account not in ctx.channels:
            continue  # an account removed from the config: its refunds wait, visible, for the operator
        due = work.count >= settings.max_details or now - work.oldest_created_at >= settings.max_wait_seconds
        if not due:
            continue
        channel = ctx.channels[work.account]
        references = channel.references(datetime.fromtimestamp(now, UTC))
        # A batch of a channel the operator approves (mapi_pwd) waits for the approval instead of being sent.
        batch = await ctx.store.create_batch(work.account, settings.max_details, references, now,
                                             awaiting_approval=isinstance(channel, ApprovalChannel))
        if batch is not None:
            crash_point(AFTER_BATCH_CREATED)
            if ctx.listened:
                batched = await ctx.store.list_refunds(batch_id=batch.id, limit=len(batch.details))
                await ctx.announce([StateChange(refund, RefundState.RECEIVED) for refund in reversed(batched)])
            ctx.signals.submitter.set()
            return True
    return False


def next_deadline(ctx: EngineContext) -> float:
    """How long the batcher may sleep: a fraction of max_wait, so a waiting refund is never late by much."""
    return max(0.05, min(1.0, ctx.config.batching.max_wait_seconds / 4))
