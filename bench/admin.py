"""The operator's API and dashboard at a million refunds: p50/p95 of each read an operator makes, over HTTP, on
SQLite and PostgreSQL.

For each backend it builds a store of `--refunds` refunds (bench/bulk_store.py: 30 days of refunds over three
platforms, twenty shops and three Alipay accounts, 93% succeeded, 4.5% failed at Alipay, 2.5% rejected locally,
1.5% of the reports dead letters, the last hour still in batches on their way; 500 refunds a batch; each refund
with its journal), starts `refund-adapter serve` on it with an admin token, and times each request below
`--requests` times (after a few unmeasured ones), one at a time, each with a value of its own where there is one
(a different trade_no, order id or refund each time): the JSON API with the Bearer token, the dashboard's HTML
pages (`page: ...`) with the session cookie of a login through the form. Target: p95 under 100 ms each.

    python bench/admin.py [--refunds 1000000] [--requests 50] [--backends sqlite,postgres] [--json]

PostgreSQL: a database of its own on the server of `--pg` (default: the tests' server), dropped afterwards.
Exit status 0 when every request answered 200 (the timings are reported, not judged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_store  # the sibling helper
import ingest  # wait_ready, CLI

from refund_adapter.testing import free_port

TOKEN = "bench-admin-token-0123456789abcdef"
WARMUP = 3
TARGET_MS = 100.0


def requests(sample: bulk_store.Sample) -> dict[str, Callable[[random.Random], str]]:
    """Each measured read: name -> the path of one request (drawn afresh for each)."""
    deep = sample.max_id // 10  # a page nine tenths of the way back

    def pick(values: list[Any]) -> Callable[[random.Random], Any]:
        return lambda rng: rng.choice(values)

    trade, order, refund = pick(sample.trade_nos), pick(sample.order_ids), pick(sample.refund_ids)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5 * 86_400))
    return {
        "refunds, first page": lambda rng: "/-/refunds?limit=50",
        "refunds, deep keyset page": lambda rng: f"/-/refunds?limit=50&before={deep + rng.randrange(1000)}",
        "search by trade_no": lambda rng: f"/-/refunds?q={trade(rng)}",
        "search by order id": lambda rng: f"/-/refunds?q={order(rng).replace('#', '%23')}",
        "filtered: failed of one shop": lambda rng: "/-/refunds?limit=50&state=failed&shop=shopify-shop-7",
        "filtered: dead letters": lambda rng: "/-/dead-letters?limit=50",
        "filtered: one account, since 5 days": lambda rng: f"/-/refunds?limit=50&account=acct-west&from={since}",
        "one refund with its timeline": lambda rng: f"/-/refunds/{refund(rng)}",
        "batches, first page": lambda rng: "/-/batches?limit=50",
        "summary 24h": lambda rng: "/-/summary?window=24h",
        "summary 30d": lambda rng: "/-/summary?window=30d",
        "page: refunds": lambda rng: "/admin/refunds",
        "page: search by trade_no": lambda rng: f"/admin/refunds?q={trade(rng)}",
        "page: filtered, failed of one shop": lambda rng: "/admin/refunds?state=failed&shop=shopify-shop-7",
        "page: a refund with its timeline": lambda rng: f"/admin/refunds/{refund(rng)}",
        "page: batches": lambda rng: "/admin/batches",
        "page: needs attention": lambda rng: "/admin/attention",
        "page: summary (24 h and 30 d)": lambda rng: "/admin/",
    }


async def session_cookie(url: str) -> str:
    """Log in through the dashboard's form, as a browser does; the `Cookie` header of the session. The cookies
    are Secure, which aiohttp's jar keeps from plain http: they are read and sent by hand."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/admin/login") as resp:
            form_token = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
            login_csrf = resp.cookies["ra_login_csrf"].value
        assert form_token is not None, "no CSRF token in the login form"
        async with session.post(url + "/admin/login", allow_redirects=False,
                                data={"csrf_token": form_token.group(1), "token": TOKEN, "next": "/admin/"},
                                headers={"Cookie": f"ra_login_csrf={login_csrf}"}) as resp:
            assert resp.status == 303, f"login answered {resp.status}"
            return f"ra_session={resp.cookies['ra_session'].value}"


@contextlib.asynccontextmanager
async def serve(folder: Path, store_url: str) -> AsyncIterator[str]:
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}", "admin_token": TOKEN},
        "store": {"url": store_url},
        "alipay": {"accounts": {"main": {"partner": "2088101122136241", "sign_type": "MD5",
                                          "md5_key": "bench-admin-md5-key-0123456789",
                                          "gateway_url": "http://127.0.0.1:9/gateway.do"}}},
        "platforms": {"generic": {"shops": [{"id": "bench", "secret": ingest.SECRET, "alipay_account": "main",
                                              "callback_url": "http://127.0.0.1:9/callback"}]}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    with (folder / "serve.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(*ingest.CLI, "serve", "--config", str(path), "--log-level",
                                                       "warning", stdout=log, stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await ingest.wait_ready(session, url + "/healthz", process)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def measure(
    url: str, sample: bulk_store.Sample, count: int, seed: int
) -> tuple[dict[str, dict[str, float]], int]:
    rng = random.Random(seed)
    figures: dict[str, dict[str, float]] = {}
    failures = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Cookie": await session_cookie(url)}
    async with aiohttp.ClientSession(headers=headers) as session:
        for name, path in requests(sample).items():
            times = []
            for n in range(WARMUP + count):
                started = time.perf_counter()
                async with session.get(url + path(rng)) as resp:
                    await resp.read()
                    failures += resp.status != 200
                if n >= WARMUP:
                    times.append((time.perf_counter() - started) * 1000)
            cuts = statistics.quantiles(times, n=100)
            figures[name] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(cuts[94], 1)}
    return figures, failures


async def run_backend(backend: str, refunds: int, count: int) -> tuple[dict[str, Any], int]:
    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        folder = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'refunds.db'}"
            else:
                url = await stack.enter_async_context(ingest.postgres_database("bench_admin"))
            started = time.perf_counter()
            sample = await bulk_store.build(url, refunds, time.time())
            built = time.perf_counter() - started
            served = await stack.enter_async_context(serve(folder, url))
            figures, failures = await measure(served, sample, count, seed=refunds)
    return {"build_s": round(built, 1), "requests": figures}, failures


def print_table(results: dict[str, dict[str, Any]], refunds: int, count: int) -> None:
    backends = list(results)
    print(f"admin API and dashboard at {refunds:,} refunds, {count} requests each "
          f"(p50 / p95 ms; target p95 < {TARGET_MS:.0f})")
    names = list(next(iter(results.values()))["requests"])
    width = max(len(name) for name in names)
    print(f"{'':{width}}  " + "  ".join(f"{backend:>17}" for backend in backends))
    for name in names:
        cells = []
        for backend in backends:
            row = results[backend]["requests"][name]
            over = " !" if row["p95_ms"] >= TARGET_MS else "  "
            cells.append(f"{row['p50_ms']:7.1f} /{row['p95_ms']:7.1f}{over}")
        print(f"{name:{width}}  " + "  ".join(cells))
    print("built in " + ", ".join(f"{backend} {results[backend]['build_s']} s" for backend in backends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refunds", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="measured requests per read (default 50)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    failures = 0
    for backend in args.backends.split(","):
        results[backend], failed = asyncio.run(run_backend(backend, args.refunds, args.requests))
        failures += failed
    print_table(results, args.refunds, args.requests)
    if args.json:
        print(json.dumps({"refunds": args.refunds, "failures": failures, **results}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
