"""The indexes behind the hot paths, and the migration that reshaped them (0003)."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import refund_adapter.store.sql as sql
from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, RefundRequest, RefundState, ReportState
from refund_adapter.store import RefundFilter, finding, store_from_url, tally
from refund_adapter.store.sqlite import SqliteStore, _sql

DAY = date(2026, 11, 26)
T0 = 1_780_000_000.0


def req(refund_id: str, trade_no: str) -> RefundRequest:
    return RefundRequest(platform="generic", shop="s1", platform_refund_id=refund_id, order_id="o-" + refund_id,
                         trade_no=trade_no, amount=Decimal("1.00"), currency="CNY", reason="", alipay_account="main")


def plan(database: Path, query: str, *args: object) -> str:
    with sqlite3.connect(database) as conn:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + _sql(query), args))


async def test_batching_reads_the_waiting_refunds_in_order_and_probes_each_trade_once(tmp_path: Path) -> None:
    """Waiting refunds in id order from refunds_by_state (no sort, so the LIMIT stops the read), and for each a
    single probe of refunds_by_trade for an earlier waiting refund of its trade: never every refund the account
    ever had, nor the whole backlog."""
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", sql.BATCH_CANDIDATES, "main", 1000)
    assert chosen == (
        "SEARCH r USING INDEX refunds_by_state (state=? AND report_state=? AND alipay_account=?) | "
        "CORRELATED SCALAR SUBQUERY 1 | "
        "SEARCH earlier USING INDEX refunds_by_trade (trade_no=? AND alipay_account=? AND id<?)"
    ), chosen


async def test_counting_reads_only_an_index(tmp_path: Path) -> None:
    """/-/stats and /metrics count every refund by state and report state: from refunds_by_state alone."""
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", sql.COUNT_REFUNDS)
    assert chosen.startswith("SCAN refunds USING COVERING INDEX refunds_by_state"), chosen


async def test_counting_the_refunds_in_review_reads_only_their_partial_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", sql.COUNT_IN_REVIEW)
    assert chosen == "SEARCH refunds USING COVERING INDEX refunds_in_review (review>?)", chosen


async def test_claiming_the_candidates_looks_each_up_rather_than_scanning_the_backlog(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", sql.CLAIM_FOR_BATCH.format(ids="$4, $5, $6"), 1, 2.0, "main", 1, 2, 3)
    assert chosen == ("SEARCH refunds USING COVERING INDEX refunds_by_state "
                      "(state=? AND report_state=? AND alipay_account=? AND id=? AND rowid=?)"), chosen


async def test_the_backlog_per_account_is_read_from_the_index_in_account_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", sql.PENDING_WORK)
    assert chosen == "SEARCH refunds USING INDEX refunds_by_state (state=? AND report_state=?)", chosen


async def test_lookups_by_batch_use_the_partial_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    chosen = plan(tmp_path / "refunds.db", "SELECT * FROM refunds WHERE batch_id = $1 ORDER BY id", 1)
    assert "USING INDEX refunds_by_batch" in chosen, chosen


async def test_a_store_from_before_0003_upgrades_in_place(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refunds stored under migrations 0001-0002 (and one batched, by hand as that code did: today's code writes
    the journal of 0007) are found and batched the same after every migration."""
    every_migration = sql.migrations()
    monkeypatch.setattr(sql, "migrations", lambda: [m for m in every_migration if m[0] < 3])
    old = store_from_url(store_url)
    await old.open()
    await old.accept([req("r1", "T1"), req("r2", "T1"), req("r3", "T2")], T0)
    assert isinstance(old, sql.SqlStore)
    async with old.transaction() as tx:
        await tx.execute("""INSERT INTO batches (account, batch_no, state, created_at, updated_at)
                            VALUES ('main', '20261126OLD0001', 'pending', $1, $1)""", T0)
        await tx.execute("""UPDATE refunds SET state = 'batched', batch_id = (SELECT id FROM batches)
                            WHERE platform_refund_id IN ('r1', 'r3')""")
    await old.close()

    monkeypatch.setattr(sql, "migrations", lambda: every_migration)
    new = store_from_url(store_url)
    await new.open()
    try:
        assert isinstance(new, sql.SqlStore)
        async with new.transaction() as tx:
            version = await tx.fetchrow("SELECT MAX(version) AS v FROM schema_version")
        assert version is not None and version["v"] == every_migration[-1][0] >= 3
        first = await new.find_batch("20261126OLD0001")
        assert first is not None and sorted(d.trade_no for d in first.details) == ["T1", "T2"]
        second = await new.create_batch("main", 1000, batch_nos(DAY), T0 + 1)
        assert second is not None and [d.trade_no for d in second.details] == ["T1"]  # r2 waited for its trade
        assert await new.create_batch("main", 1000, batch_nos(DAY), T0 + 2) is None
        changes = await new.set_batch_state(first.id, BatchState.SUBMITTED, T0 + 3)
        assert sorted(c.refund.request.platform_refund_id for c in changes) == ["r1", "r3"]
        r2 = await new.find_refund("generic", "s1", "r2")
        assert r2 is not None and r2.state is RefundState.BATCHED and r2.batch_id == second.id
    finally:
        await new.close()


async def test_the_dead_letters_are_listed_and_retried_from_their_partial_index(tmp_path: Path) -> None:
    """A few dead letters among a million refunds: read from refunds_dead_letters (0006), never the table."""
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    query, args = finding.refund_query(RefundFilter(report_state=ReportState.DEAD), None, limit=100,
                                       before_id=None, after_id=None, window=None)
    listing = plan(tmp_path / "refunds.db", query, *args)
    assert listing.startswith("SCAN refunds USING INDEX refunds_dead_letters"), listing
    paging = plan(tmp_path / "refunds.db", sql.DEAD_LETTERS_AFTER, 0, 1000)
    assert paging == "SEARCH refunds USING INDEX refunds_dead_letters (id>?)", paging


@pytest.mark.parametrize(("where", "chosen"), [
    # Filters most refunds share read the primary key in id order over a bounded range, never an index on the
    # filtered column (which would sort every refund in a state, say, before the first page is known).
    (RefundFilter(), "SEARCH refunds USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
    (RefundFilter(state=RefundState.SUCCEEDED, platform="shopify", shop="s", account="a", created_from=1.0,
                  created_to=2.0), "SEARCH refunds USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
    # A search probes one index per identifier; a batch's refunds come from refunds_by_batch.
    (RefundFilter(search="x"), "MULTI-INDEX OR | INDEX 1 | SEARCH refunds USING INDEX refunds_by_order "
     "(order_id=? AND rowid<?) | INDEX 2 | SEARCH refunds USING INDEX refunds_by_platform_refund "
     "(platform_refund_id=? AND rowid<?) | INDEX 3 | SEARCH refunds USING INDEX refunds_by_trade (trade_no=?) | "
     "INDEX 4 | SEARCH refunds USING INDEX refunds_by_batch (batch_id=?) | USE TEMP B-TREE FOR ORDER BY"),
    # The refunds in review and the dead letters, whatever else narrows them: their partial index alone (found by
    # bench/admin.py: a page of those in review walked the primary key through every refund to find none).
    (RefundFilter(review=True), "SEARCH refunds USING INDEX refunds_in_review (review>?) | "
     "USE TEMP B-TREE FOR ORDER BY"),
    (RefundFilter(review=True, state=RefundState.FAILED, shop="s", created_from=1.0),
     "SEARCH refunds USING INDEX refunds_in_review (review>?) | USE TEMP B-TREE FOR ORDER BY"),
    (RefundFilter(report_state=ReportState.DEAD, state=RefundState.FAILED, platform="shopify"),
     "SEARCH refunds USING INDEX refunds_dead_letters (id<?)"),
    (RefundFilter(batch_id=3), "SEARCH refunds USING INDEX refunds_by_batch (batch_id=?) | "
     "USE TEMP B-TREE FOR ORDER BY"),
])
async def test_finding_refunds_reads_the_primary_key_or_the_one_index_that_finds_them(
    tmp_path: Path, where: RefundFilter, chosen: str
) -> None:
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    window = None if finding.is_selective(where) else (1, 100_001)
    query, args = finding.refund_query(where, 7 if where.search else None, limit=50, before_id=100_000,
                                       after_id=None, window=window)
    assert plan(tmp_path / "refunds.db", query, *args) == chosen


@pytest.mark.parametrize(("query", "args", "chosen"), [
    (finding.FIRST_AT_OR_AFTER, [1.0], "SEARCH refunds USING COVERING INDEX refunds_by_created (created_at>?)"),
    (finding.LAST_BEFORE, [1.0], "SEARCH refunds USING COVERING INDEX refunds_by_created (created_at<?)"),
    (tally.TALLY_IN_WINDOW, [1, 2, 3600], "SEARCH refund_tally USING INDEX sqlite_autoindex_refund_tally_1 "
     "(hour>? AND hour<?) | USE TEMP B-TREE FOR GROUP BY"),
    (tally.REPORTS_IN_WINDOW, [1, 2], "SEARCH report_tally USING INDEX sqlite_autoindex_report_tally_1 "
     "(hour>? AND hour<?) | USE TEMP B-TREE FOR GROUP BY"),
    # The refunds still on their way: the backlog's entries in refunds_by_state, never a window's every refund.
    (tally.UNRESOLVED_IN_WINDOW, [1, 2], "SEARCH refunds USING INDEX refunds_by_state (state=?)"),
    (sql.COUNT_BY_BATCH.format(ids="$1, $2"), [1, 2], "SEARCH refunds USING COVERING INDEX refunds_by_batch "
     "(batch_id=?)"),
])
async def test_the_summary_and_the_batch_counts_read_tallies_or_an_index(
    tmp_path: Path, query: str, args: list[object], chosen: str
) -> None:
    """A month's summary reads its hours' tallies and the backlog; a page of batches counts from an index alone."""
    store = SqliteStore(tmp_path / "refunds.db")
    await store.open()
    await store.close()
    assert plan(tmp_path / "refunds.db", query, *args) == chosen
