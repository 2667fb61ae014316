"""SQLite shared by `serve`'s web process and its engine process (store/sqlite.py, roles): the web process waits
for the write lock without holding its event loop, one engine at a time works on a file, and a second service on
the same file is still refused."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from refund_adapter.models import RefundRequest
from refund_adapter.store.sqlite import SqliteStore

NOW = 1_764_090_000.0
HELD_SECONDS = 0.5


def refund(n: int) -> RefundRequest:
    return RefundRequest(platform="generic", shop="s", platform_refund_id=f"r{n}", order_id=f"o{n}",
                         trade_no=f"20261125{n:08d}", amount=Decimal("1.00"), currency="CNY", reason="r",
                         alipay_account="main")


async def _longest_stall_while(work: asyncio.Task[object]) -> float:
    """The longest gap between ticks of a 5 ms ticker while `work` runs."""
    longest, last = 0.0, time.monotonic()
    while not work.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


async def test_the_web_role_waits_for_the_write_lock_without_holding_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "refunds.db"
    store = SqliteStore(db, role="web")
    await store.open()
    other = sqlite3.connect(db, isolation_level=None)  # the engine process, in the middle of a transaction
    try:
        other.execute("BEGIN IMMEDIATE")
        loop = asyncio.get_running_loop()
        loop.call_later(HELD_SECONDS, other.execute, "COMMIT")
        started = time.monotonic()
        accepting = asyncio.create_task(store.accept([refund(1)], NOW))
        stall = await _longest_stall_while(accepting)
        (result,) = accepting.result()
        assert result.created
        assert time.monotonic() - started >= HELD_SECONDS  # it did wait for the lock...
        assert stall < HELD_SECONDS / 2  # ...on the loop, not in a busy handler that sleeps it
    finally:
        other.close()
        await store.close()


async def test_the_all_role_waits_in_line_as_before(tmp_path: Path) -> None:
    """The contrast that shows the test above can fail: SQLite's busy handler holds the loop."""
    db = tmp_path / "refunds.db"
    store = SqliteStore(db)
    await store.open()
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(HELD_SECONDS, other.execute, ("COMMIT",))  # the loop is held: commit elsewhere
        timer.start()
        accepting = asyncio.create_task(store.accept([refund(1)], NOW))
        assert await _longest_stall_while(accepting) >= HELD_SECONDS / 2
        timer.join()
    finally:
        other.close()
        await store.close()


async def test_one_engine_at_a_time_and_one_service_per_file(tmp_path: Path) -> None:
    db = tmp_path / "refunds.db"
    web = SqliteStore(db, role="web")
    await web.open()
    first = SqliteStore(db, role="engine")
    await first.open()  # beside the web process
    second = SqliteStore(db, role="engine")
    opening = asyncio.create_task(second.open())  # a restarted engine while its predecessor still dies
    try:
        await asyncio.sleep(0.3)
        assert not opening.done()
        await first.close()
        await asyncio.wait_for(opening, 10)  # it takes over once the first is gone
        for role in ("web", "all"):  # a second service is refused at once, whatever its role
            with pytest.raises(RuntimeError, match="in use by another refund-adapter process"):
                await SqliteStore(db, role=role).open()  # type: ignore[arg-type]
    finally:
        if not opening.done():
            opening.cancel()
        with contextlib.suppress(BaseException):
            await opening
        await second.close()
        await web.close()
