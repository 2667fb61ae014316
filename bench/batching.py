"""Batch creation cost against the number of refunds the account already settled (SQLite store).

Batching picks each trade's first waiting refund. It should cost the same whether the account settled a hundred
refunds or a million, and whatever its backlog: since migration 0003 the query reads the waiting refunds in id
order and probes each one's trade once (`store/sql.py`, BATCH_CANDIDATES). This script measures it. With
`--compare` it also measures the query and index as they were before 0003, side by side in the same run:

    python bench/batching.py [--settled 100000] [--waiting 3000] [--max-details 1000] [--compare] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import refund_adapter.store.sql as store_sql
from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import RefundRequest
from refund_adapter.store.sqlite import SqliteStore

DAY = date(2026, 11, 26)
# What 0003 replaced, to measure it again: every refund of the account was read through refunds_by_trade.
INDEX_BEFORE_0003 = "CREATE INDEX refunds_by_trade ON refunds (alipay_account, trade_no)"
CANDIDATES_BEFORE_0003 = """SELECT id FROM (
                               SELECT id, ROW_NUMBER() OVER (PARTITION BY trade_no ORDER BY id) AS nth FROM refunds
                               WHERE state = 'received' AND alipay_account = $1) AS firsts
                           WHERE nth = 1 ORDER BY id LIMIT $2"""
ACCEPT_CHUNK = 5000


def request(index: int) -> RefundRequest:
    return RefundRequest(platform="generic", shop="bench", platform_refund_id=f"r-{index}", order_id=f"o-{index}",
                         trade_no=f"2026{index:012d}", amount=Decimal("1.00"), currency="CNY", reason="bench",
                         alipay_account="main")


async def accept_range(store: SqliteStore, start: int, stop: int) -> None:
    for first in range(start, stop, ACCEPT_CHUNK):
        await store.accept([request(i) for i in range(first, min(first + ACCEPT_CHUNK, stop))], time.time())


async def measure(folder: Path, settled: int, waiting: int, max_details: int, before_0003: bool) -> list[float]:
    """Seconds per batch while draining `waiting` refunds, with `settled` succeeded refunds on the account."""
    store = SqliteStore(folder / f"refunds-{'before' if before_0003 else 'now'}.db")
    await store.open()
    try:
        await accept_range(store, 0, settled)
        async with store.transaction() as tx:
            await tx.execute("UPDATE refunds SET state = 'succeeded'")
            if before_0003:
                await tx.execute("DROP INDEX refunds_by_trade")
                await tx.execute(INDEX_BEFORE_0003)
        await accept_range(store, settled, settled + waiting)
        candidates = store_sql.BATCH_CANDIDATES
        store_sql.BATCH_CANDIDATES = CANDIDATES_BEFORE_0003 if before_0003 else candidates
        times = []
        try:
            while True:
                started = time.perf_counter()
                batch = await store.create_batch("main", max_details, batch_nos(DAY), time.time())
                if batch is None:
                    return times
                times.append(time.perf_counter() - started)
        finally:
            store_sql.BATCH_CANDIDATES = candidates
    finally:
        await store.close()


async def run(settled: int, waiting: int, max_details: int, compare: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {"settled": settled, "waiting": waiting, "max_details": max_details}
    with tempfile.TemporaryDirectory(prefix="batching-bench-") as tmp:
        for label, before in (("before_0003", True), ("now", False)) if compare else (("now", False),):
            times = await measure(Path(tmp), settled, waiting, max_details, before)
            summary[label] = {"batches": len(times), "ms_per_batch": round(statistics.median(times) * 1000, 2)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settled", type=int, default=100_000, help="succeeded refunds on the account (100000)")
    parser.add_argument("--waiting", type=int, default=3000, help="refunds waiting for a batch (3000)")
    parser.add_argument("--max-details", type=int, default=1000, help="refunds per batch (1000)")
    parser.add_argument("--compare", action="store_true",
                        help="also measure the query and index as they were before 0003")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    args = parser.parse_args()
    summary = asyncio.run(run(args.settled, args.waiting, args.max_details, args.compare))
    for label in ("before_0003", "now"):
        if label in summary:
            row = summary[label]
            print(f"{label:>11}: {row['ms_per_batch']:8.2f} ms per batch of up to {args.max_details} "
                  f"({row['batches']} batches, {args.settled} settled refunds on the account)")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
