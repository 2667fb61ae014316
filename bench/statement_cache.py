"""What the store's prepared statements cost `serve` in memory: reports recorded delivered in steps of every size
from 1 to --sizes (as the reporter records them: an IN list of that many ids and that many journal rows), on a
fresh SQLite store, and the process's resident memory before and after. Each statement whose text grows with its
values is prepared once per shape and kept by the connection (1024 statements per SQLite connection).

    python bench/statement_cache.py [--sizes 300] [--json]
    PYTHONPATH=/path/to/other/checkout python bench/statement_cache.py    # another build, for an A/B
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from refund_adapter.models import RefundRequest
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


async def run(sizes: int) -> dict[str, float]:
    total = sizes * (sizes + 1) // 2
    with tempfile.TemporaryDirectory(prefix="statement-cache-") as tmp:
        store = SqliteStore(Path(tmp) / "refunds.db")
        await store.open()
        try:
            for start in range(0, total, 500):
                await store.accept([request(i) for i in range(start, min(total, start + 500))], time.time())
            async with store.transaction() as tx:  # every refund final, its report due: as the reporter finds them
                await tx.execute("UPDATE refunds SET state = 'succeeded', report_state = 'pending', report_next_at = 0")
            before, started, position = rss_mb(), time.process_time(), 1
            for size in range(1, sizes + 1):
                await store.report_delivered(list(range(position, position + size)), time.time())
                position += size
            cpu = time.process_time() - started
            after = rss_mb()
        finally:
            await store.close()
    return {"sizes": sizes, "reports": total, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "grew_mb": round(after - before, 1), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, default=300, help="steps of 1, 2, ... this many reports (default 300)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.sizes))
    print(json.dumps(result) if args.json else
          f"{result['reports']} reports in steps of 1..{result['sizes']}: RSS {result['rss_before_mb']} -> "
          f"{result['rss_after_mb']} MB (+{result['grew_mb']}), {result['cpu_s']} s of CPU")


if __name__ == "__main__":
    main()
