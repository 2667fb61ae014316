"""Alipay's asynchronous notifies: believed only when signed by the batch's account and confirmed by Alipay, and
about the batch we sent; recorded idempotently before we answer `success` (a result that contradicts the record
is not applied but flags its refund for review: results.py). How a notify is decoded, signed and read is the
batch's channel's (channels/base.py); what is believed and recorded is decided here."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..channels.base import UNVERIFIED, NotifyKind, NotifyRefused, OpenedNotify
from ..failpoints import AFTER_NOTIFY_VERIFIED, crash_point
from ..models import Batch
from ..untrusted import bounded, quote
from .results import record_verdicts
from .runtime import EngineContext

log = logging.getLogger(__name__)

# A body larger than this is decoded and verified on a thread (decoding a large form holds the loop).
INLINE_DECODE_BYTES = 16 * 1024
SUCCESS = "success"  # the exact body Alipay waits for; anything else makes it send again
FAIL = "fail"

# How a notify ended, for the `refund_adapter_notifies_total` counter (refund_adapter/metrics.py); the channel
# names why it refused one (channels/base.py: forged, unverified, malformed, mismatch).
ACCEPTED, DUPLICATE, ANOMALY = "accepted", "duplicate", "anomaly"
UNKNOWN_BATCH, UNKNOWN_ACCOUNT = "unknown_batch", "unknown_account"


@dataclass(frozen=True)
class NotifyAnswer:
    body: str
    reason: str  # why, for the log (never shown to the sender)
    outcome: str  # one of the outcomes above

    @property
    def accepted(self) -> bool:
        return self.body == SUCCESS


async def _refuse(
    ctx: EngineContext, reason: str, outcome: str, batch: Batch | None = None, kind: str = ""
) -> NotifyAnswer:
    """`fail`, logged; kept in the journal of the batch it named, when that batch is ours."""
    reason = bounded(reason)  # anyone can post a notify: its fields are quoted into `reason`
    log.warning("alipay notify refused: %s", reason)
    if batch is not None:
        await ctx.store.record_batch_event(batch.id, f"{kind}_refused", {"verified": False, "reason": reason},
                                           ctx.clock())
    return NotifyAnswer(FAIL, reason, outcome)


async def _authentic(
    ctx: EngineContext, batch: Batch, body: bytes, kind: NotifyKind
) -> tuple[OpenedNotify, bool] | NotifyRefused:
    """A genuine notify about `batch` and whether it was recorded before, or why it is not one."""
    channel = ctx.channels.get(batch.account)
    if channel is None:
        return NotifyRefused(f"batch {batch.reference}: account {batch.account!r} is not configured", UNKNOWN_ACCOUNT)
    if len(body) <= INLINE_DECODE_BYTES:
        opened = channel.open_notify(kind, batch, body)
    else:
        opened = await asyncio.to_thread(channel.open_notify, kind, batch, body)
    if isinstance(opened, NotifyRefused):
        return opened
    if await ctx.store.notify_seen(batch.reference, opened.message_id, kind.name):
        return opened, True  # a redelivery of what is already recorded: acknowledge without asking again
    if not await channel.confirm_notify(opened):
        return NotifyRefused(f"batch {batch.reference}: Alipay did not confirm notify {quote(opened.message_id)}",
                             UNVERIFIED)
    return opened, False


async def handle_notify(ctx: EngineContext, body: bytes, kind: NotifyKind) -> NotifyAnswer:
    """Verify, check against the batch, record idempotently; `success` only after the commit."""
    reference = kind.reference_in(body)
    batch = await ctx.store.find_batch(reference) if reference else None
    if batch is None:
        return await _refuse(ctx, f"unknown batch {quote(reference)}", UNKNOWN_BATCH)
    found = await _authentic(ctx, batch, body, kind)
    if isinstance(found, NotifyRefused):
        return await _refuse(ctx, found.reason, found.outcome, batch, kind.name)
    opened, seen = found
    channel = ctx.channels[batch.account]
    reading = channel.read_notify(kind, batch, opened)
    if isinstance(reading, NotifyRefused):
        return await _refuse(ctx, reading.reason, reading.outcome, batch, kind.name)
    crash_point(AFTER_NOTIFY_VERIFIED)
    # A contradicting result is answered `success` too, once its review flag is committed with the rest: Alipay
    # resends the same notify (same id, same content) up to 8 times over 25 h, which would only repeat the
    # anomaly; the query re-reads Alipay's view whenever needed, and `fail` would look like an outage to Alipay.
    recorded = await record_verdicts(ctx, batch, reading.results, message_id=reading.message_id, kind=kind.name)
    log.info("alipay %s notify %s for batch %s: %s, %d changes", kind.name, reading.message_id, batch.reference,
             reading.summary, len(recorded.changes))
    outcome = ANOMALY if recorded.anomalies else DUPLICATE if seen else ACCEPTED
    return NotifyAnswer(SUCCESS, "recorded", outcome)
