"""The engine loops stop when cancelled, whenever the cancel arrives (SIGTERM must stop `serve`); each cycle
awaits its `before_cycle` once, then drains all its work."""

from __future__ import annotations

import asyncio

import pytest

from refund_adapter.engine.pressure import IngestPressure
from refund_adapter.engine.runtime import run_loop
from refund_adapter.testing import wait_until


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


async def test_before_cycle_is_awaited_once_per_cycle_then_all_work_is_drained() -> None:
    wake = asyncio.Event()
    gate = asyncio.Event()  # holds before_cycle, as IngestPressure.quiet does during a burst
    entered = asyncio.Event()
    drained = asyncio.Event()
    backlog = [3]
    log: list[str] = []

    async def before_cycle() -> None:
        log.append("before")
        entered.set()
        await gate.wait()

    async def step() -> bool:
        log.append("step")
        if backlog[0]:
            backlog[0] -= 1
            return True
        drained.set()
        return False

    loop = asyncio.create_task(run_loop("t", wake, 3600, step, before_cycle))
    try:
        async with asyncio.timeout(5):
            await entered.wait()
            assert log == ["before"]  # no step while before_cycle waits
            gate.set()
            await drained.wait()
            assert log == ["before", "step", "step", "step", "step"]  # 3 units of work, then "no more"

            drained.clear()
            backlog[0] = 2
            wake.set()  # the next cycle: before_cycle once more, then everything
            await drained.wait()
            assert log[5:] == ["before", "step", "step", "step"]
    finally:
        loop.cancel()


async def test_a_loop_cancelled_while_its_before_cycle_waits_stops() -> None:
    pressure = IngestPressure(quiet_seconds=0.02, max_seconds=30)
    steps = 0

    async def step() -> bool:
        nonlocal steps
        steps += 1
        return False

    with pressure.webhook():
        task = asyncio.create_task(run_loop("t", asyncio.Event(), 3600, step, pressure.quiet))

        async def waiting() -> bool:
            return pressure.waiting == 1

        await wait_until(waiting, within=2, interval=0.001, what="the loop waiting for a pause in webhooks")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
    assert done == {task} and task.cancelled()
    assert (steps, pressure.waiting) == (0, 0)


async def test_a_loop_survives_a_step_that_raises_and_runs_it_again(caplog: pytest.LogCaptureFixture) -> None:
    """A step's exception is logged with its traceback; the loop then waits for its next tick (here a wake-up)
    and calls the step again, rather than dying and leaving its work undone until a restart."""
    wake = asyncio.Event()
    calls: list[int] = []
    failed, recovered = asyncio.Event(), asyncio.Event()

    async def step() -> bool:
        calls.append(len(calls))
        if len(calls) == 1:
            failed.set()
            raise RuntimeError("the store went away for a moment")
        recovered.set()
        return False

    task = asyncio.create_task(run_loop("flaky", wake, 3600, step))
    try:
        async with asyncio.timeout(5):
            await failed.wait()
            wake.set()
            await recovered.wait()
        assert not task.done()
    finally:
        task.cancel()
    (record,) = [r for r in caplog.records if r.name == "refund_adapter.engine.runtime"]
    assert record.levelname == "ERROR" and "flaky step failed" in record.getMessage()
    assert record.exc_info is not None and "went away" in str(record.exc_info[1])
    assert calls == [0, 1]
