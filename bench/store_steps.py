"""How long each store step of one batch holds SQLite's writer: a fresh store in a temporary folder, `--refunds`
refunds accepted in groups of 40 (as intake's group commit stores them), then one batch made of them, claimed for
submitting, marked submitted, its results recorded (as a notify records them) and its reports claimed and recorded
delivered, each step timed alone, `--rounds` times (the median is printed). No other process is running: the time
is the step's own work, SQL and Python, with the writer held throughout.

    python bench/store_steps.py [--refunds 1000] [--rounds 5] [--json]
    PYTHONPATH=/path/to/other/checkout python bench/store_steps.py    # another build, for an A/B
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable
from datetime import date
from pathlib import Path
from typing import TypeVar

from statement_cache import request

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, DetailResult
from refund_adapter.store.sqlite import SqliteStore

T = TypeVar("T")
GROUP = 40  # webhooks per group commit, about what 64 connections give (store/group_commit.py)


async def one_round(refunds: int) -> dict[str, float]:
    """The milliseconds of each step for one batch of `refunds`, on a store of its own."""
    timings: dict[str, float] = {}

    async def step(name: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await work
        timings[name] = (time.perf_counter() - started) * 1000
        return result

    with tempfile.TemporaryDirectory(prefix="store-steps-") as folder:
        store = SqliteStore(Path(folder) / "refunds.db")
        await store.open()
        try:
            requests = [request(i) for i in range(refunds)]
            for start in range(0, refunds, GROUP):
                await store.accept(requests[start : start + GROUP], time.time())
            batch = await step("create_batch", store.create_batch("main", refunds, batch_nos(date.today()),
                                                                  time.time()))
            assert batch is not None and len(batch.details) == refunds
            await step("claim_batch_to_submit", store.claim_batch_to_submit(time.time(), 60))
            await step("set_batch_state", store.set_batch_state(batch.id, BatchState.SUBMITTED, time.time()))
            verdicts = [DetailResult(r.trade_no, r.amount, "SUCCESS") for r in requests]
            await step("record_results", store.record_results(batch.id, verdicts, time.time(), message_id="n1",
                                                              kind="refund"))
            claimed = await step("claim_reports", store.claim_reports(time.time(), refunds, 60))
            await step("report_delivered", store.report_delivered([refund.id for refund in claimed], time.time()))
        finally:
            await store.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", type=int, default=1000, help="refunds in the batch (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="batches, each on a fresh store (default 5)")
    parser.add_argument("--json", action="store_true", help="also print the medians as one JSON object")
    args = parser.parse_args()
    rounds = [asyncio.run(one_round(args.refunds)) for _ in range(args.rounds)]
    medians = {name: round(statistics.median(r[name] for r in rounds), 1) for name in rounds[0]}
    for name, ms in medians.items():
        print(f"{name:>22}: {ms:7.1f} ms (median of {args.rounds}) for {args.refunds} refunds")
    if args.json:
        print(json.dumps({"refunds": args.refunds, "rounds": args.rounds, "ms": medians}))


if __name__ == "__main__":
    main()
