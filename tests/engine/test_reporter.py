"""The outbox under a failing platform: a retryable failure is retried (never dead-lettered early), after a
backoff that stays within its jitter bounds and cap, honouring the platform's Retry-After; a failure that
retrying cannot fix, or one past the give-up horizon, becomes a dead letter."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.engine.reporter import REPORTS_IN_FLIGHT, REPORTS_PER_STEP, backoff, report_once, step_size
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.models import BatchState, DetailResult, Refund, ReportState
from refund_adapter.money import beijing_now
from refund_adapter.testing import serve

from .kit import Clock, Shop, driven_engine, request, settled_refund

BASE, CAP, GIVE_UP = 2.0, 60.0, 3600.0
REPORTER = {"reporter": {"base_delay_seconds": BASE, "max_delay_seconds": CAP, "give_up_after_seconds": GIVE_UP}}


async def current(ctx: EngineContext, refund: Refund) -> Refund:
    found = await ctx.store.get_refund(refund.id)
    assert found is not None
    return found


async def due_at(ctx: EngineContext, moment: float) -> bool:
    """Whether the report is due at `moment` (claimed by the store, which leases it: ask once per failure)."""
    return bool(await ctx.store.claim_reports(moment, 10, 60.0))


async def test_a_failure_the_platform_may_recover_from_is_retried_within_the_backoff_bounds(tmp_path: Path) -> None:
    """Every failure in a row waits between BASE and min(CAP, BASE * 2**attempts), never a dead letter."""
    clock, shop = Clock(), Shop([(500, {})] * 8)
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        refund = await settled_refund(ctx)
        assert await report_once(ctx)
        for attempts in range(1, 8):  # claim_reports counts the attempt before delivering it
            failed_at = clock.now
            after = await current(ctx, refund)
            assert (after.report_state, after.report_attempts) == (ReportState.PENDING, attempts)
            assert after.report_error is not None and after.report_error.startswith("HTTP 500")
            assert not await due_at(ctx, failed_at + BASE - 0.001)
            clock.now = failed_at + min(CAP, BASE * 2**attempts)
            assert await report_once(ctx), f"attempt {attempts}: not due at the backoff's upper bound"
        assert shop.calls == 8
        clock.now += CAP
        assert await report_once(ctx)  # the shop answers 200 now
        assert (await current(ctx, refund)).report_state is ReportState.DELIVERED


async def test_retry_after_is_honoured_over_a_shorter_backoff(tmp_path: Path) -> None:
    clock, shop = Clock(), Shop([(503, {"Retry-After": "600"})])
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        refund = await settled_refund(ctx)
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.PENDING
        assert not await due_at(ctx, clock.now + 599.9)  # the backoff alone would be due after 4 s at most
        assert await due_at(ctx, clock.now + 600)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ((401, {}), "the shop refuses our secret: retrying cannot fix it"),
        ((503, {"Retry-After": str(int(GIVE_UP) + 1)}), "the platform asks us to come back after the horizon"),
    ],
)
async def test_a_failure_retrying_cannot_fix_is_a_dead_letter_at_once(
    tmp_path: Path, answer: tuple[int, dict[str, str]], why: str
) -> None:
    clock, shop = Clock(), Shop([answer])
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        refund = await settled_refund(ctx)
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.DEAD, why
        assert not await due_at(ctx, clock.now + 10 * GIVE_UP)


async def test_a_report_is_retried_up_to_the_give_up_horizon_then_dead_lettered(tmp_path: Path) -> None:
    """The horizon counts from when the refund became final, not from the last attempt."""
    clock, shop = Clock(), Shop([(500, {})] * 2)
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        final_at = clock.now
        refund = await settled_refund(ctx)
        clock.now = final_at + GIVE_UP - 2 * BASE * 2  # the next wait (at most 2 * BASE) still ends before it
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.PENDING
        clock.now = final_at + GIVE_UP - BASE / 2  # any wait (at least BASE) now ends after it
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.DEAD


def test_backoff_is_jittered_between_base_and_its_capped_ceiling() -> None:
    rng = random.Random(13)
    for attempt in (0, 1, 3, 6, 40, 10_000):
        ceiling = min(CAP, BASE * 2 ** min(attempt, 30))
        draws = [backoff(attempt, BASE, CAP, rng) for _ in range(200)]
        assert all(BASE <= d <= ceiling for d in draws), attempt
        if ceiling > BASE:
            assert max(draws) - min(draws) > (ceiling - BASE) / 2, f"attempt {attempt}: not jittered"
    assert backoff(5, BASE, BASE / 2, rng) == BASE  # a cap below the base never waits less than the base


async def test_the_platform_is_told_each_refunds_own_outcome_under_a_stable_webhook_id(tmp_path: Path) -> None:
    """What the shop learns is what Alipay said: status, code and batch_no of that refund, under a webhook-id of
    its own (shops deduplicate by it) that a retry repeats."""
    clock, shop = Clock(), Shop([(500, {})])
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        paid = await settled_refund(ctx, "SUCCESS")
        refused = await settled_refund(ctx, "TRADE_HAS_CLOSED")
        assert await report_once(ctx)  # the first delivery fails (500), the second is delivered
        clock.now += CAP
        assert await report_once(ctx)
        assert [(await current(ctx, r)).report_state for r in (paid, refused)] == [ReportState.DELIVERED] * 2
    sent = {body["refund_id"]: (webhook_id, body) for webhook_id, body in shop.received}
    assert len(shop.received) == 3 and len({webhook_id for webhook_id, _ in shop.received}) == 2
    for refund, status in ((paid, "succeeded"), (refused, "failed")):
        webhook_id, body = sent[refund.request.platform_refund_id]
        assert (body["status"], body["code"], body["batch_no"]) == (status, refund.code, refund.batch_no)
        assert refund.batch_no and webhook_id == f"refund-{refund.id}"


class Exploding:
    """A platform plugin whose `report` has a bug."""

    async def report(self, outcome: object) -> object:
        raise RuntimeError("plugin bug")


async def test_a_plugin_that_raises_or_is_missing_is_retried_and_the_operator_sees_why(tmp_path: Path) -> None:
    clock = Clock()
    async with driven_engine(tmp_path, clock, **REPORTER) as engine:
        ctx = dataclasses.replace(engine, platforms={"generic": Exploding()})
        buggy = await settled_refund(ctx)
        orphan = await settled_refund(ctx, platform="uninstalled")
        assert await report_once(ctx)
        buggy, orphan = await current(ctx, buggy), await current(ctx, orphan)
    assert (buggy.report_state, buggy.report_error) == (ReportState.PENDING, "plugin error: RuntimeError: plugin bug")
    assert (orphan.report_state, orphan.report_error) == (
        ReportState.PENDING, "platform 'uninstalled' is not loaded"
    )


async def test_a_retry_falling_exactly_on_the_give_up_horizon_is_still_made(tmp_path: Path) -> None:
    clock, shop = Clock(), Shop([(503, {"Retry-After": "600"})])
    async with serve(shop.app()) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        refund = await settled_refund(ctx)
        clock.now += GIVE_UP - 600
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.PENDING
        clock.now += 600
        assert await report_once(ctx)
        assert (await current(ctx, refund)).report_state is ReportState.DELIVERED


async def test_a_step_delivers_many_results_with_at_most_reports_in_flight_at_once(tmp_path: Path) -> None:
    """A step claims up to `step_size` results and records them delivered together, while the platform never has
    more than REPORTS_IN_FLIGHT of our deliveries open at once (and does get that many: they run together)."""
    waiting = REPORTS_IN_FLIGHT * 2 + 5
    open_now, peak, full = 0, 0, asyncio.Event()

    async def callback(request: web.Request) -> web.Response:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        if open_now >= REPORTS_IN_FLIGHT:
            full.set()
        async with asyncio.timeout(10):  # the first REPORTS_IN_FLIGHT wait for each other; the rest find it set
            await full.wait()
        await request.read()
        open_now -= 1
        return web.Response(text="ok")

    shop = web.Application()
    shop.router.add_post("/callback", callback)
    clock = Clock()
    async with serve(shop) as shop_url, driven_engine(tmp_path, clock, shop_url=shop_url, **REPORTER) as ctx:
        assert waiting <= step_size(ctx)
        now = clock.now
        await ctx.store.accept([request() for _ in range(waiting)], now)
        day = beijing_now(datetime.fromtimestamp(now, UTC)).date()
        batch = await ctx.store.create_batch("main", waiting, batch_nos(day), now)
        assert batch is not None
        await ctx.store.set_batch_state(batch.id, BatchState.SUBMITTED, now)
        await ctx.store.record_results(batch.id, [DetailResult(d.trade_no, d.amount, "SUCCESS") for d in batch.details],
                                       now, message_id=None, kind="query")
        assert await report_once(ctx)
        counts = await ctx.store.counts()
    assert counts["reports"] == {"delivered": waiting}
    assert peak == REPORTS_IN_FLIGHT


@pytest.mark.parametrize(
    ("lease", "http_timeout", "size"),
    [(120, 15, 6 * REPORTS_IN_FLIGHT), (20, 15, REPORTS_IN_FLIGHT), (3600, 15, REPORTS_PER_STEP)],
)
async def test_a_step_claims_no_more_than_its_deliveries_can_finish_within_the_lease(
    tmp_path: Path, lease: float, http_timeout: float, size: int
) -> None:
    """Each delivery may take the whole HTTP timeout, REPORTS_IN_FLIGHT at a time: a step claims so few that its
    waves end at least two timeouts before its lease does (another instance would take its results over)."""
    sections = {"engine": {"lease_seconds": lease}, "http": {"total_timeout_seconds": http_timeout}}
    async with driven_engine(tmp_path, Clock(), **sections) as ctx:
        assert step_size(ctx) == size
    waves = -(-size // REPORTS_IN_FLIGHT)
    assert waves * http_timeout <= max(http_timeout, lease - 2 * http_timeout)
