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

# Results claimed per step, and recorded delivered in one commit: each step costs two commits (an fsync each, a few
# milliseconds on a busy disk) whatever its size, so a step of 50 spent more on commits than on delivering
# (bench/e2e.py; docs/performance.md). Deliveries run at most REPORTS_IN_FLIGHT at once: a platform sees no more
# connections from us than that, and a step's memory stays a few hundred refunds.
REPORTS_PER_STEP = 500
REPORTS_IN_FLIGHT = 64


def step_size(ctx: EngineContext) -> int:
    """How many results a step claims: REPORTS_PER_STEP, or fewer when the lease is short. The step's deliveries
    (each at most `http.total_timeout_seconds`, REPORTS_IN_FLIGHT at once) must end well within the lease, or another
    instance could take a result over while it is still being delivered."""
    waves = int(ctx.config.engine.lease_seconds // ctx.config.http.total_timeout_seconds) - 2
    return min(REPORTS_PER_STEP, max(1, waves) * REPORTS_IN_FLIGHT)


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


LOGGED_PER_LINE = 50  # refunds named by one INFO line


def _count_and_log_delivered(ctx: EngineContext, delivered: list[Refund]) -> None:
    """One count per platform and one INFO line per LOGGED_PER_LINE refunds, naming each refund and its result: a
    line per refund would cost as much CPU as the webhook's own line again (bench/README.md)."""
    for platform, count in Counter(refund.request.platform for refund in delivered).items():
        ctx.metrics.report_attempts.labels(platform, "delivered").inc(count)
    if log.isEnabledFor(logging.INFO):
        for start in range(0, len(delivered), LOGGED_PER_LINE):
            some = delivered[start : start + LOGGED_PER_LINE]
            log.info("%d results reported: %s", len(some),
                     ", ".join(f"refund {r.id} {r.state.value}{f' {r.code}' if r.code else ''}" for r in some),
                     extra={"refund_ids": [refund.id for refund in some]})


async def report_once(ctx: EngineContext) -> bool:
    """Deliver the reports that are due, REPORTS_IN_FLIGHT at a time; True when some were handled."""
    refunds = await ctx.store.claim_reports(ctx.clock(), step_size(ctx), ctx.config.engine.lease_seconds)
    in_flight = asyncio.Semaphore(REPORTS_IN_FLIGHT)

    async def deliver(refund: Refund) -> DeliveryResult:
        async with in_flight:
            return await _deliver(ctx, refund)

    results = await asyncio.gather(*(deliver(refund) for refund in refunds))
    delivered = [r for r, res in zip(refunds, results, strict=True) if res.status is DeliveryStatus.DELIVERED]
    if delivered:
        crash_point(AFTER_REPORT)
        await record_delivered(ctx, [refund.id for refund in delivered])
        _count_and_log_delivered(ctx, delivered)
    for refund, result in zip(refunds, results, strict=True):
        if result.status is not DeliveryStatus.DELIVERED:
            await settle_failure(ctx, refund, result)
    return bool(refunds)
