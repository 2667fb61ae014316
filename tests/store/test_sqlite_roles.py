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


def _engine_holding_a_transaction(db: Path, held: threading.Event, seconds: float) -> None:
    """The engine process, as a thread with its own loop and store: one write transaction held for `seconds`."""

    async def hold() -> None:
        store = SqliteStore(db, role="engine")
        await store.open()
        try:
            async with store.transaction():
                held.set()
                await asyncio.sleep(seconds)  # its own loop: the web process's must go on meanwhile
        finally:
            await store.close()

    asyncio.run(hold())


async def test_the_web_role_waits_for_the_engines_transaction_without_holding_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "refunds.db"
    store = SqliteStore(db, role="web")
    await store.open()
    held = threading.Event()
    engine = threading.Thread(target=_engine_holding_a_transaction, args=(db, held, HELD_SECONDS))
    try:
        engine.start()
        await asyncio.to_thread(held.wait, 10)
        started = time.monotonic()
        accepting = asyncio.create_task(store.accept([refund(1)], NOW))
        stall = await _longest_stall_while(accepting)
        (result,) = accepting.result()
        assert result.created
        assert time.monotonic() - started >= HELD_SECONDS / 2  # it did wait for the engine's transaction...
        assert stall < HELD_SECONDS / 2  # ...on a thread, not in SQLite's busy handler, which sleeps the loop
    finally:
        await asyncio.to_thread(engine.join)
        await store.close()


async def test_without_the_process_lock_the_wait_holds_the_loop(tmp_path: Path) -> None:
    """The contrast that shows the test above can fail: a writer met at SQLite's own lock (the single-process
    role, and any writer that does not take WRITE_LOCK) waits in its busy handler, on the loop."""
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


@pytest.mark.parametrize(("role", "in_line"), [("engine", True), ("web", False), ("all", False)])
async def test_bulk_transactions_run_in_line_only_in_the_engine_process(tmp_path: Path, role: str,
                                                                        in_line: bool) -> None:
    """The engine's loop answers no request, so its bulk transactions run on it (no GIL hand-off per statement);
    elsewhere they run on the writer's thread, so the loop that answers webhooks goes on."""
    store = SqliteStore(tmp_path / "refunds.db", role=role)  # type: ignore[arg-type]
    await store.open()
    try:
        assert store._writer is not None
        store._writer.create_function("thread_id", 0, threading.get_ident)
        async with store.bulk_transaction() as tx:
            row = await tx.fetchrow("SELECT thread_id() AS ran_on")
        assert row is not None and (row["ran_on"] == threading.get_ident()) is in_line
    finally:
        await store.close()
