"""Sends batches that are on disk. A batch is SENDING (and leased) before the request leaves, so after a
crash the same batch_no is sent again; Alipay's DUPLICATE_BATCH_NO then proves the first send landed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from ..alipay.codec import batch_no_date, beijing_now, error_code
from ..alipay.gateway import SubmitKind, SubmitOutcome
from ..failpoints import AFTER_SUBMIT, crash_point
from ..models import Batch, BatchState
from .runtime import EngineContext

log = logging.getLogger(__name__)

SUBMIT_LEASE_SECONDS = 120.0  # longer than any HTTP timeout: an expired lease means the sender died
RETRY_DELAY_SECONDS = 30.0  # after a retryable rejection (SYSTEM_ERROR...), the same batch_no is sent again
BATCH_NO_FORMAT_ERROR = "BATCH_NO_FORMAT_ERROR"


@dataclass(frozen=True)
class Decision:
    state: BatchState
    code: str | None = None
    query_after: float | None = None  # seconds until the reconciler asks Alipay
    retry_after: float | None = None  # seconds until the batch is sent again


def decide(outcome: SubmitOutcome, batch: Batch, today_beijing: date, first_query_after: float) -> Decision:
    """What a submit outcome means for the batch. Nothing unproven ever fails a refund."""
    if outcome.kind in (SubmitKind.ACCEPTED, SubmitKind.PROCESSING, SubmitKind.DUPLICATE):
        return Decision(BatchState.SUBMITTED, query_after=first_query_after)
    if outcome.kind is SubmitKind.UNKNOWN:
        return Decision(BatchState.UNKNOWN, query_after=first_query_after)
    code = outcome.code or "UNKNOWN_ERROR"
    if code == BATCH_NO_FORMAT_ERROR and batch_no_date(batch.batch_no) != today_beijing:
        if batch.submit_attempts > 1:
            # A resend after midnight (Beijing) is refused for its date; an earlier send may have landed.
            return Decision(BatchState.UNKNOWN, code=code, query_after=0)
        # Formed before midnight, first sent after it: Alipay never took it, so its refunds get a new batch_no.
        return Decision(BatchState.ABANDONED, code=code)
    if not error_code(code).final:
        return Decision(BatchState.PENDING, code=code, retry_after=RETRY_DELAY_SECONDS)
    return Decision(BatchState.REJECTED, code=code)


async def submit_once(ctx: EngineContext) -> bool:
    """Claim and send one batch; True when one was handled."""
    now = ctx.clock()
    batch = await ctx.store.claim_batch_to_submit(now, SUBMIT_LEASE_SECONDS)
    if batch is None:
        return False
    channel = ctx.channels.get(batch.account)
    if channel is None:
        log.error("batch %s: account %r is not configured; left for the operator", batch.batch_no, batch.account)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="ACCOUNT_NOT_CONFIGURED")
        return True
    moment = datetime.fromtimestamp(ctx.clock(), UTC)
    outcome = await channel.submit(batch, moment)
    crash_point(AFTER_SUBMIT)
    decision = decide(outcome, batch, beijing_now(moment).date(), ctx.config.reconciler.first_query_after_seconds)
    done = ctx.clock()
    changes = await ctx.store.set_batch_state(
        batch.id,
        decision.state,
        done,
        code=decision.code,
        next_query_at=None if decision.query_after is None else done + decision.query_after,
        retry_at=None if decision.retry_after is None else done + decision.retry_after,
    )
    log.info("batch %s (%d details): %s -> %s", batch.batch_no, len(batch.details), outcome.kind.value,
             decision.state.value)
    await ctx.announce(changes)
    if decision.state is BatchState.ABANDONED:
        ctx.signals.batcher.set()
    if decision.query_after is not None:
        ctx.signals.reconciler.set()
    return True
