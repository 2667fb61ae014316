"""When SQLite refuses a COMMIT (disk full, I/O error, a deferred constraint), the store rolls the transaction
back: nothing of it stays, the error reaches the caller, and the next transaction works."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import RefundRequest
from refund_adapter.store.sqlite import SqliteStore

from ..sqlite_faults import commits_failing

NOW = 1_764_090_000.0


def refund(n: int) -> RefundRequest:
    return RefundRequest(platform="generic", shop="s", platform_refund_id=f"r{n}", order_id=f"o{n}",
                         trade_no=f"20261125{n:08d}", amount=Decimal("1.00"), currency="CNY", reason="r",
                         alipay_account="main")


async def test_a_refused_commit_is_rolled_back_and_the_store_stays_usable(tmp_path: Path) -> None:
    db = tmp_path / "refunds.db"
    store = SqliteStore(db)
    await store.open()
    try:
        await store.accept([refund(1)], NOW)
        with commits_failing(db, "refunds"), pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await store.accept([refund(2), refund(3)], NOW)
        # A batch written and its refunds claimed, then the COMMIT fails.
        with commits_failing(db, "batches"), pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await store.create_batch("main", 10, batch_nos(date(2026, 11, 25)), NOW)
        assert await store.list_batches() == []
        assert (await store.counts())["refunds"] == {"received": 1}
        (kept,) = await store.list_refunds()
        assert (kept.request.order_id, kept.batch_id) == ("o1", None)
        # The writer is not left inside the refused transaction: the same work now commits.
        assert [r.created for r in await store.accept([refund(2), refund(3)], NOW)] == [True, True]
        batch = await store.create_batch("main", 10, batch_nos(date(2026, 11, 25)), NOW)
        assert batch is not None and len(batch.details) == 3
    finally:
        await store.close()
    # What a fresh process finds on disk: the three refunds committed, nothing of the refused transactions.
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT order_id FROM refunds ORDER BY id").fetchall() == [("o1",), ("o2",), ("o3",)]
        assert check.execute("SELECT COUNT(*) FROM batches").fetchone() == (1,)
