"""The kill loop's long form: `refund-adapter serve` SIGKILLed at random moments while signed webhooks keep
arriving, restarted, `--loops` times; then every refund must be paid at most once at the Alipay sandbox (exactly
once when acknowledged) and reported once to the shop (`refund_adapter.chaos`; tests/test_kill_loop.py runs the
short form in CI).

    python bench/kill_loop.py [--loops 100] [--refunds 1000] [--seed N] [--instances 1 --store-url URL] [--json]

The seed is printed first: rerun with `--seed` to repeat a run's schedule of kills and webhooks. Prints the
counts and every broken promise; exit status 1 when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from refund_adapter.chaos import run_kill_loop


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=100, help="kills (each followed by a restart)")
    parser.add_argument("--refunds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--instances", type=int, default=1, help="serve processes on one store (PostgreSQL if > 1)")
    parser.add_argument("--store-url", default=None, help="default: an SQLite file in a temporary folder")
    parser.add_argument("--json", action="store_true", help="also print the counts as one JSON object (last line)")
    return parser.parse_args()


async def main() -> int:
    args = arguments()
    if args.instances > 1 and not (args.store_url or "").startswith("postgresql://"):
        print("several instances need --store-url postgresql://... (SQLite is single-instance)", file=sys.stderr)
        return 2
    seed = random.SystemRandom().randrange(2**32) if args.seed is None else args.seed
    print(f"seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="kill-loop-") as folder:
        run = await run_kill_loop(
            Path(folder), refunds=args.refunds, kills=args.loops, seed=seed, store_url=args.store_url,
            instances=args.instances, on_kill=lambda line: print(line, flush=True),
        )
    print(run.counts.line())
    problems = run.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("ok: every acknowledged refund paid once and reported once" if not problems else
          f"{len(problems)} problems")
    if args.json:
        print(json.dumps({**asdict(run.counts), "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
