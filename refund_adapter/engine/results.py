"""Recording Alipay's verdicts, from a notify or the query, the same way: what agrees with the record is
applied and announced; what contradicts it (`DetailResult.contradiction`) changes nothing but the refund's
review flag, and is a WARNING and a count, never a quiet INFO line."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..models import Batch, DetailResult
from ..store import RecordedResults
from .runtime import EngineContext

log = logging.getLogger(__name__)


async def record_verdicts(
    ctx: EngineContext, batch: Batch, results: Sequence[DetailResult], *, message_id: str | None, kind: str
) -> RecordedResults:
    """Record `results` (already checked against the batch), announce the changes, raise the anomalies."""
    recorded = await ctx.store.record_results(batch.id, results, ctx.clock(), message_id=message_id, kind=kind)
    await ctx.announce(recorded.changes)
    for anomaly in recorded.anomalies:
        ctx.metrics.result_anomalies.labels(source=kind).inc()
        log.warning("batch %s: refund %d (trade %s) flagged for review, result not applied: %s", batch.reference,
                    anomaly.refund_id, anomaly.trade_no, anomaly.reason)
    return recorded
