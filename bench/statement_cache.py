"""What the store's prepared statements cost `serve` in memory, on a fresh SQLite store: the process's resident
memory before and after work in steps of every size from 1 to --sizes. `reports`: results recorded delivered (as
the reporter records them: an IN list of that many ids, that many journal rows); `batches`: a batch of each size
made, submitted and its results recorded (as a trickle of refunds makes them: batches of any size up to 1000).
Each statement whose text grows with its values is prepared once per shape and kept by the connection (1024
statements per SQLite connection).

    python bench/statement_cache.py [--path reports|batches] [--sizes 300] [--json]
    PYTHONPATH=/path/to/other/checkout python bench/statement_cache.py    # another build, for an A/B
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, DetailResult, RefundRequest
from refund_adapter.store.sqlite import SqliteStore


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def request(i: int) -> RefundRequest:
    return RefundRequest(platform="generic", shop="s", platform_refund_id=f"r{i}", order_id=f"o{i}",
                         trade_no=f"2026120766{i:012d}", amount=Decimal("1.00"), currency="CNY", reason="bench",
                         alipay_account="main")


async def reports(store: SqliteStore, sizes: int) -> None:
    async with store.transaction() as tx:  # every refund final, its report due: as the reporter finds them
        await tx.execute("UPDATE refunds SET state = 'succeeded', report_state = 'pending', report_next_at = 0")
    position = 1
    for size in range(1, sizes + 1):
        await store.report_delivered(list(range(position, position + size)), time.time())
        position += size


async def batches(store: SqliteStore, sizes: int) -> None:
    for size in range(1, sizes + 1):
        now = time.time()
        batch = await store.create_batch("main", size, batch_nos(date.today()), now)
        assert batch is not None and len(batch.details) == size
        await store.set_batch_state(batch.id, BatchState.SUBMITTED, now)
        await store.record_results(batch.id, [DetailResult(d.trade_no, d.amount, "SUCCESS") for d in batch.details],
                                   now, message_id=f"n{batch.id}", kind="refund")


async def run(path: str, sizes: int) -> dict[str, float | str]:
    total = sizes * (sizes + 1) // 2
    with tempfile.TemporaryDirectory(prefix="statement-cache-") as tmp:
        store = SqliteStore(Path(tmp) / "refunds.db")
        await store.open()
        try:
            for start in range(0, total, 500):
                await store.accept([request(i) for i in range(start, min(total, start + 500))], time.time())
            before, started = rss_mb(), time.process_time()
            await (reports if path == "reports" else batches)(store, sizes)
            cpu = time.process_time() - started
            after = rss_mb()
        finally:
            await store.close()
    return {"path": path, "sizes": sizes, "refunds": total, "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1), "grew_mb": round(after - before, 1), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, default=300, help="steps of 1, 2, ... this many refunds (default 300)")
    parser.add_argument("--path", choices=("reports", "batches"), default="reports")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.path, args.sizes))
    print(json.dumps(result) if args.json else
          f"{result['path']}: {result['refunds']} refunds in steps of 1..{result['sizes']}: "
          f"RSS {result['rss_before_mb']} -> {result['rss_after_mb']} MB (+{result['grew_mb']}), "
          f"{result['cpu_s']} s of CPU")


if __name__ == "__main__":
    main()
