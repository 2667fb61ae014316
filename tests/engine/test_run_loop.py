"""The engine loops stop when cancelled, whenever the cancel arrives (SIGTERM must stop `serve`)."""

from __future__ import annotations

import asyncio

from refund_adapter.engine.runtime import IngestPressure, run_loop


async def test_a_loop_cancelled_at_its_tick_always_stops() -> None:
    async def idle() -> bool:
        return False

    for attempt in range(300):
        task = asyncio.create_task(run_loop("t", asyncio.Event(), 0.0005, idle, IngestPressure()))
        await asyncio.sleep(0.0005 * (attempt % 7))  # cancels land at every phase of the tick
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task}, f"attempt {attempt}: the loop swallowed its cancel and kept running"
        assert task.cancelled()


async def test_steps_give_way_to_webhooks_in_flight_for_at_most_max_defer() -> None:
    pressure = IngestPressure(threshold=2, max_defer=0.05)
    loop = asyncio.get_running_loop()
    with pressure.ingesting(), pressure.ingesting():
        started = loop.time()
        await pressure.yield_to_ingest()
        assert loop.time() - started >= 0.04  # waited while intake was busy...
    started = loop.time()
    await pressure.yield_to_ingest()
    assert loop.time() - started < 0.04  # ...and not once it was calm
    assert pressure.in_flight == 0
