"""Sends batches that are on disk. A batch is SENDING (and leased) before the request leaves, so after a
crash the same batch is sent again under the same reference; the channel then says the first send landed.

One bad refund never holds the others: a detail the channel will not send leaves its batch (REJECTED,
INVALID_DETAIL) and the rest is sent; a batch Alipay refuses for a detail it does not name is halved until
that detail is alone, and fails alone. A submit that raises is retried a bounded number of times, then the
batch waits in review for an operator: nothing stays SENDING or is resent forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ..channels.base import DetailsRefused, Submitted, Verdict
from ..failpoints import AFTER_SUBMIT, crash_point
from ..models import Batch, BatchState
from ..store import Cause
from .runtime import EngineContext

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 30.0  # after a retryable rejection (SYSTEM_ERROR...), the same batch is sent again
INVALID_DETAIL = "INVALID_DETAIL"  # a refund's detail breaks the channel's protocol: it never left, alone
SUBMIT_ERROR = "SUBMIT_ERROR"  # the submit raised (a bug): retried, then the batch is left for review
MAX_SUBMIT_ATTEMPTS_ON_ERROR = 5  # a submit that raised on this many attempts is not going to stop raising
ERROR_ANSWER = "error"  # the submitted-batches metric's label for a submit that raised


@dataclass(frozen=True)
class Decision:
    state: BatchState
    code: str | None = None
    query_after: float | None = None  # seconds until the Alipay query loop asks
    retry_after: float | None = None  # seconds until the batch is sent again
    split: bool = False  # ABANDONED by halving: its refunds go on in two new batches


def decide(outcome: Submitted, batch: Batch, first_query_after: float) -> Decision:
    """What a submit's verdict means for the batch. Nothing unproven ever fails a refund."""
    if outcome.verdict is Verdict.ACCEPTED:
        return Decision(BatchState.SUBMITTED, query_after=first_query_after)
    if outcome.verdict is Verdict.UNKNOWN:
        return Decision(BatchState.UNKNOWN, query_after=first_query_after)
    code = outcome.code or "UNKNOWN_ERROR"
    if outcome.verdict is Verdict.EXPIRED:
        if batch.submit_attempts > 1:
            # A resend refused for its day (after midnight, Beijing): an earlier send may have landed.
            return Decision(BatchState.UNKNOWN, code=code, query_after=0)
        # Formed before midnight, first sent after it: Alipay never took it, so its refunds get a new reference.
        return Decision(BatchState.ABANDONED, code=code)
    if outcome.verdict is Verdict.DETAIL_REFUSED:
        return _isolate(code, batch)
    if outcome.verdict is Verdict.RETRY:
        return Decision(BatchState.PENDING, code=code, retry_after=RETRY_DELAY_SECONDS)
    return Decision(BatchState.REJECTED, code=code)


def _isolate(code: str, batch: Batch) -> Decision:
    """Refused whole for a detail Alipay does not name: halve the batch until that detail is alone.

    Only a first send proves the refusal means "never accepted": a resend's refusal may follow a send that
    landed unseen, and moving its refunds to new batch_nos could pay them twice, so an operator decides.
    """
    if len(batch.details) == 1:
        return Decision(BatchState.REJECTED, code=code)  # the culprit, alone: it fails with Alipay's code
    if batch.submit_attempts > 1:
        return Decision(BatchState.REVIEW, code=code)
    return Decision(BatchState.ABANDONED, code=code, split=True)


def after_error(batch: Batch) -> Decision:
    """A submit that raised: the same batch again later (always safe), until the attempts run out."""
    if batch.submit_attempts >= MAX_SUBMIT_ATTEMPTS_ON_ERROR:
        return Decision(BatchState.REVIEW, code=SUBMIT_ERROR)
    return Decision(BatchState.PENDING, code=SUBMIT_ERROR, retry_after=RETRY_DELAY_SECONDS)


async def _take_out(ctx: EngineContext, batch: Batch, refused: DetailsRefused) -> bool:
    """The refused refunds leave the batch, REJECTED and reported; the rest is sent under the same reference.
    False when none could be taken out (so the batch is not claimed again and again for them)."""
    for refund_id, why in refused.reasons.items():
        log.error("batch %s: refund %d not sendable (%s): rejected as %s, the batch goes on without it",
                  batch.reference, refund_id, why, INVALID_DETAIL)
    changes = await ctx.store.remove_from_batch(batch.id, list(refused.reasons), INVALID_DETAIL, ctx.clock())
    await ctx.announce(changes)
    ctx.signals.submitter.set()
    return bool(changes)


def _cause(batch: Batch, what: str, outcome: Submitted | None = None) -> Cause:
    """The submit attempt as the journals keep it: the request the channel sent and the answer."""
    detail: dict[str, object] = {"attempt": batch.submit_attempts, "answer": what}
    if outcome is not None:
        detail.update(code=outcome.code, explanation=outcome.detail, request=dict(outcome.request))
    return Cause("submit", f"submit attempt {batch.submit_attempts} of batch {batch.reference}: {what}", detail)


async def _send(ctx: EngineContext, batch: Batch, moment: datetime) -> tuple[Cause, Decision, str] | None:
    """Send the batch and decide what its answer means: (what happened, decision, the metric's label), or None
    once the channel's refused details were taken out. An exception never escapes: the loop would send the batch
    again forever."""
    channel = ctx.channels[batch.account]
    try:
        outcome = await channel.submit(batch, moment)
        crash_point(AFTER_SUBMIT)
        decision = decide(outcome, batch, ctx.config.alipay_query.first_query_after_seconds)
        return _cause(batch, outcome.answer, outcome), decision, outcome.answer
    except DetailsRefused as refused:
        if await _take_out(ctx, batch, refused):
            return None
        return _cause(batch, "refused details not in the batch"), after_error(batch), ERROR_ANSWER
    except Exception as exc:
        log.exception("batch %s: submit attempt %d raised", batch.reference, batch.submit_attempts)
        return _cause(batch, f"error: {type(exc).__name__}"), after_error(batch), ERROR_ANSWER


REFUNDS_NAMED = 20  # in a batch's line: enough to follow a refund of a small batch, bounded for a batch of 1000


def named_refunds(batch: Batch) -> str:
    """The batch's refund ids for its log line, so a refund's id leads from its webhook's line to its batch."""
    ids = [str(detail.refund_id) for detail in batch.details[:REFUNDS_NAMED]]
    more = len(batch.details) - REFUNDS_NAMED
    return ", ".join(ids) + (f" and {more} more" if more > 0 else "")


async def submit_once(ctx: EngineContext) -> bool:
    """Claim and send one batch; True when one was handled."""
    now = ctx.clock()
    batch = await ctx.store.claim_batch_to_submit(now, ctx.config.engine.lease_seconds)
    if batch is None:
        return False
    if batch.account not in ctx.channels:
        log.error("batch %s: account %r is not configured; left for the operator", batch.reference, batch.account)
        await ctx.store.set_batch_state(batch.id, BatchState.REVIEW, now, code="ACCOUNT_NOT_CONFIGURED",
                                        cause=_cause(batch, "account not configured"))
        return True
    moment = datetime.fromtimestamp(ctx.clock(), UTC)
    sent = await _send(ctx, batch, moment)
    if sent is None:
        return True
    cause, decision, answer = sent
    ctx.metrics.batches_submitted.labels(batch.account, answer).inc()
    done = ctx.clock()
    if decision.split:
        halves = await ctx.store.split_batch(batch.id, ctx.channels[batch.account].references(moment), done,
                                             code=decision.code or "")
        log.warning("batch %s (%d details) refused for a detail (%s): split into %s", batch.reference,
                    len(batch.details), decision.code, " and ".join(half.reference for half in halves))
        ctx.signals.submitter.set()
        return True
    changes = await ctx.store.set_batch_state(
        batch.id,
        decision.state,
        done,
        code=decision.code,
        next_query_at=None if decision.query_after is None else done + decision.query_after,
        retry_at=None if decision.retry_after is None else done + decision.retry_after,
        cause=cause,
    )
    log.info("batch %s (%d details, refunds %s): %s -> %s", batch.reference, len(batch.details),
             named_refunds(batch), answer, decision.state.value, extra={"batch_reference": batch.reference})
    await ctx.announce(changes)
    if decision.state is BatchState.ABANDONED:
        ctx.signals.batcher.set()
    if decision.query_after is not None:
        ctx.signals.alipay_query.set()
    return True
