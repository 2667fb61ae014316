"""The engine loops stop when cancelled, whenever the cancel arrives (SIGTERM must stop `serve`)."""

from __future__ import annotations

import asyncio

from refund_adapter.engine.runtime import run_loop


async def test_a_loop_cancelled_at_its_tick_always_stops() -> None:
    async def idle() -> bool:
        return False

    for attempt in range(300):
        task = asyncio.create_task(run_loop("t", asyncio.Event(), 0.0005, idle))
        await asyncio.sleep(0.0005 * (attempt % 7))  # cancels land at every phase of the tick
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task}, f"attempt {attempt}: the loop swallowed its cancel and kept running"
        assert task.cancelled()

