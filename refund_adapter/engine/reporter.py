"""The outbox: every final result is delivered to its platform through the platform's adapter, retried with
exponential backoff and full jitter for about a day, then kept as a dead letter an operator can retry."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

from ..failpoints import AFTER_REPORT, crash_point
from ..models import DeliveryResult, DeliveryStatus, Refund
from ..store import StoreUnavailable
from .runtime import EngineContext

log = logging.getLogger(__name__)

REPORTS_PER_STEP = 50


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [base, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    return (rng or random).uniform(base, max(base, ceiling))


async def _deliver(ctx: EngineContext, refund: Refund) -> DeliveryResult:
    adapter = ctx.platforms.get(refund.request.platform)
    if adapter is None:
        return DeliveryResult.retry(f"platform {refund.request.platform!r} is not loaded")
    try:
        return await adapter.report(refund.outcome())
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a plugin bug must not stop the outbox; it is retried like any failure
        log.exception("platform %s failed to report refund %d", refund.request.platform, refund.id)
        return DeliveryResult.retry(f"plugin error: {type(exc).__name__}: {exc}")


async def settle_failure(ctx: EngineContext, refund: Refund, result: DeliveryResult) -> None:
    """Record a failed delivery: retried later with backoff, or a dead letter."""
    now = ctx.clock()
    settings = ctx.config.reporter
    final_since = refund.updated_at.timestamp()
    delay = backoff(refund.report_attempts, settings.base_delay_seconds, settings.max_delay_seconds)
    if result.retry_after_seconds is not None:
        delay = max(delay, result.retry_after_seconds)
    gave_up = now + delay - final_since > settings.give_up_after_seconds
    platform = refund.request.platform
    if result.status is DeliveryStatus.DEAD or gave_up:
        ctx.metrics.report_attempts.labels(platform, "dead").inc()
        log.error("refund %d: report is a dead letter: %.300s", refund.id, result.reason)
        await ctx.store.report_failed(refund.id, result.reason, next_at=None, now=now)
        return
    ctx.metrics.report_attempts.labels(platform, "retry").inc()
    log.warning("refund %d: report failed (%.300s); retry in %.0fs", refund.id, result.reason, delay)
    await ctx.store.report_failed(refund.id, result.reason, next_at=now + delay, now=now)


async def record_delivered(ctx: EngineContext, refund_ids: list[int]) -> None:
    """Record that the platforms have these results, in one commit, retrying while the store is unavailable: given
    up, the reports would stay leased and be delivered a second time when the lease runs out."""
    delay = ctx.config.reporter.base_delay_seconds
    while True:
        try:
            await ctx.store.report_delivered(refund_ids, ctx.clock())
            return
        except StoreUnavailable as exc:
            log.warning("%d reports delivered but not recorded (%s); recording again in %.1fs",
                        len(refund_ids), exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, ctx.config.reporter.max_delay_seconds)


def _count_and_log_delivered(ctx: EngineContext, delivered: list[Refund]) -> None:
    """One count per platform and one INFO line per step (at most REPORTS_PER_STEP refunds), naming each refund and
    its result: a line per refund would cost as much CPU as the webhook's own line again (bench/README.md)."""
    for platform, count in Counter(refund.request.platform for refund in delivered).items():
        ctx.metrics.report_attempts.labels(platform, "delivered").inc(count)
    if log.isEnabledFor(logging.INFO):
        log.info("%d results reported: %s", len(delivered),
                 ", ".join(f"refund {r.id} {r.state.value}{f' {r.code}' if r.code else ''}" for r in delivered),
                 extra={"refund_ids": [refund.id for refund in delivered]})


async def report_once(ctx: EngineContext) -> bool:
    """Deliver the reports that are due, concurrently; True when some were handled."""
    refunds = await ctx.store.claim_reports(ctx.clock(), REPORTS_PER_STEP, ctx.config.engine.lease_seconds)

    results = await asyncio.gather(*(_deliver(ctx, refund) for refund in refunds))
    delivered = [r for r, res in zip(refunds, results, strict=True) if res.status is DeliveryStatus.DELIVERED]
    if delivered:
        crash_point(AFTER_REPORT)
        await record_delivered(ctx, [refund.id for refund in delivered])
        _count_and_log_delivered(ctx, delivered)
    for refund, result in zip(refunds, results, strict=True):
        if result.status is not DeliveryStatus.DELIVERED:
            await settle_failure(ctx, refund, result)
    return bool(refunds)
