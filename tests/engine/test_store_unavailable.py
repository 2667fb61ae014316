"""An engine loop whose step finds the store unavailable (a full disk, a lost connection) says so in one line per
tick, not a traceback (during an outage every loop fails every tick, onto a disk that may be full), and goes on.
The whole loop under those faults is in tests/faults."""

from __future__ import annotations

import asyncio
import logging

import pytest

from refund_adapter.engine.runtime import run_loop
from refund_adapter.store import StoreUnavailable


async def test_a_step_refused_by_the_store_is_one_warning_line_and_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    retried = asyncio.Event()

    async def step() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("SQLite: database or disk is full")
        retried.set()
        return False

    caplog.set_level(logging.WARNING, "refund_adapter.engine.runtime")
    loop = asyncio.create_task(run_loop("reporter", asyncio.Event(), 0.01, step))
    try:
        async with asyncio.timeout(5):
            await retried.wait()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    (record,) = [r for r in caplog.records if r.name == "refund_adapter.engine.runtime"]
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert record.getMessage() == "reporter step: SQLite: database or disk is full; retrying in 0.0s"
