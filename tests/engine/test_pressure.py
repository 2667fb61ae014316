"""Engine loops give way to webhooks: `IngestPressure.quiet` waits for a pause in them, for a bounded time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.config import Config, parse_config
from refund_adapter.engine.pressure import IngestPressure
from refund_adapter.models import RefundState
from refund_adapter.sandbox import SandboxConfig, TradeSeed
from refund_adapter.testing import adapter_loop, local_config, wait_until
from refund_adapter.web.keys import ENGINE

PARTNER = "2088101122136241"
MD5_KEY = "pressure-md5-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(b"pressure-test-shop-secret-32byte").decode()
SHOP = "shop-1"
TRADE_NO = "2026112522000000000077"


def returns_without_suspending(coro: Coroutine[Any, Any, None]) -> bool:
    """Whether `coro` finishes on its first step, never giving the event loop a turn."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()
    return False


async def test_quiet_returns_at_once_when_no_webhook_was_seen() -> None:
    assert returns_without_suspending(IngestPressure(quiet_seconds=0.02, max_seconds=10).quiet())


async def test_quiet_returns_at_once_when_the_last_webhook_ended_before_the_quiet_window() -> None:
    now = [100.0]
    pressure = IngestPressure(quiet_seconds=0.5, max_seconds=10, clock=lambda: now[0])
    with pressure.webhook():
        pass
    assert pressure.last_finished == 100.0
    now[0] = 100.6
    assert returns_without_suspending(pressure.quiet())


async def let_others_run() -> None:
    """A few turns of the event loop for every ready task (not a timed wait)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def parked(pressure: IngestPressure, count: int = 1) -> None:
    async def waiting() -> bool:
        return pressure.waiting == count

    await wait_until(waiting, within=2, interval=0.001, what="quiet() waiting")


async def test_quiet_waits_while_a_webhook_is_in_flight() -> None:
    pressure = IngestPressure(quiet_seconds=0, max_seconds=30)  # no quiet window: only in-flight holds it
    with pressure.webhook():
        waiter = asyncio.create_task(pressure.quiet())
        await parked(pressure)
        with pressure.webhook():  # another webhook comes and goes while the first is still in flight
            pass
        await let_others_run()
        assert pressure.in_flight == 1
        assert not waiter.done(), "quiet() returned while a webhook was in flight"
    async with asyncio.timeout(5):  # far below max_seconds: the end of the webhook let it go
        await waiter
    assert (pressure.in_flight, pressure.waiting) == (0, 0)


async def test_quiet_waits_for_the_quiet_window_after_the_last_webhook() -> None:
    loop = asyncio.get_running_loop()
    pressure = IngestPressure(quiet_seconds=0.2, max_seconds=30)
    with pressure.webhook():
        waiter = asyncio.create_task(pressure.quiet())
        await parked(pressure)
    assert not waiter.done()
    with pressure.webhook():  # a webhook within the window starts it again
        pass
    last = loop.time()
    async with asyncio.timeout(5):
        await waiter
    assert loop.time() - last >= 0.2


async def test_quiet_gives_up_after_max_seconds_while_webhooks_keep_coming() -> None:
    loop = asyncio.get_running_loop()
    pressure = IngestPressure(quiet_seconds=0.02, max_seconds=0.2)
    answered = 0

    async def burst() -> None:
        nonlocal answered
        while True:  # in flight drops to zero between two webhooks, never for the quiet window
            with pressure.webhook():
                await asyncio.sleep(0.002)
            answered += 1

    sender = asyncio.create_task(burst())

    async def sending() -> bool:
        return pressure.in_flight == 1

    await wait_until(sending, within=2, interval=0.001, what="the burst started")
    try:
        started = loop.time()
        async with asyncio.timeout(5):
            await pressure.quiet()
        waited = loop.time() - started
        assert not sender.done()
    finally:
        sender.cancel()
    assert waited >= 0.2
    assert answered > 0
    assert pressure.waiting == 0


async def test_max_seconds_zero_never_waits() -> None:
    pressure = IngestPressure(quiet_seconds=0.02, max_seconds=0)
    with pressure.webhook():
        assert returns_without_suspending(pressure.quiet())
    assert returns_without_suspending(pressure.quiet())  # nor in the quiet window after a webhook


async def test_quiet_is_cancellable() -> None:
    pressure = IngestPressure(quiet_seconds=0.02, max_seconds=30)
    with pressure.webhook():
        waiter = asyncio.create_task(pressure.quiet())
        await parked(pressure)
        waiter.cancel()
        done, _ = await asyncio.wait({waiter}, timeout=2)
    assert done == {waiter} and waiter.cancelled()
    assert pressure.waiting == 0


async def test_webhook_marks_nest_and_count() -> None:
    now = [5.0]
    pressure = IngestPressure(clock=lambda: now[0])
    with pressure.webhook(), pressure.webhook():
        assert pressure.in_flight == 2
    now[0] = 6.0
    try:
        with pressure.webhook():
            raise ValueError("a handler failed")
    except ValueError:
        pass
    assert (pressure.in_flight, pressure.last_finished) == (0, 6.0)


# --- through the real app ------------------------------------------------------------------------------------


def config(tmp_path: Path, port: int, gateway_url: str, shop_url: str) -> Config:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
    raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                       platforms={"generic": {"shops": [shop]}},
                       engine={"yield_quiet_seconds": 0.02, "yield_max_seconds": 30})
    return parse_config(raw, env={})


async def test_no_batch_is_made_while_webhooks_are_in_flight_and_one_is_once_they_end(tmp_path: Path) -> None:
    sandbox = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0,
                            trades=[TradeSeed(TRADE_NO, Decimal("20.00"))])
    shop = SimulatedShop(SECRET)

    def app_config(port: int, gateway_url: str, shop_url: str) -> Config:
        return config(tmp_path, port, gateway_url, shop_url)

    async with adapter_loop(app_config, sandbox=sandbox, shop=shop, request_timeout=10) as running:
        ctx = running.app[ENGINE]
        assert (ctx.pressure.quiet_seconds, ctx.pressure.max_seconds) == (0.02, 30)
        with ctx.pressure.webhook():  # a burst in progress
            # Start a batcher cycle after the burst began: it must now be waiting in quiet().
            ctx.signals.batcher.set()

            async def batcher_cycle_started() -> bool:
                return not ctx.signals.batcher.is_set() and ctx.pressure.waiting >= 1

            await wait_until(batcher_cycle_started, within=2, interval=0.005, what="a batcher cycle")
            payload = {"refund_id": "r-1", "order_id": "o-1", "trade_no": TRADE_NO, "amount": "12.30",
                       "currency": "CNY", "reason": "damaged", "paid_amount": "20.00"}
            assert await shop.send_refund(running.http, running.url, SHOP, payload) == 200  # answered meanwhile
            accepted = await ctx.store.find_refund("generic", SHOP, "r-1")
            assert accepted is not None
            due_at = accepted.created_at.timestamp() + ctx.config.batching.max_wait_seconds

            async def long_overdue() -> bool:  # several batcher ticks past the moment it would be batched
                return ctx.clock() > due_at + 0.2

            await wait_until(long_overdue, within=2, interval=0.01, what="the refund overdue")
            waiting = await ctx.store.find_refund("generic", SHOP, "r-1")
            assert waiting is not None and waiting.state is RefundState.RECEIVED, "batched during the burst"
            assert ctx.signals.batcher.is_set(), "the batcher began a cycle during the burst"
            assert running.sandbox.state.batches == {}

        async def batched() -> bool:
            refund = await ctx.store.find_refund("generic", SHOP, "r-1")
            return refund is not None and refund.state is not RefundState.RECEIVED

        await wait_until(batched, within=2, interval=0.01, what="the refund batched after the burst")
