"""End to end: from a shop's refund webhook to the result reported back to that shop, through `serve`.

Three processes on free loopback ports besides this one: the Alipay sandbox (`refund-adapter sandbox`), a shop
(`python bench/e2e.py --shop-server`, which verifies each signed result callback as a platform would and notes
when the first one of each refund arrived) and `refund-adapter serve` with its configuration's defaults, its
gateway the sandbox and its shop callbacks the shop, on a fresh SQLite file or a fresh PostgreSQL database. The
webhooks are sent by `wrk` (`--driver wrk`, the default where installed: each written ahead, signed, so the
generator takes a fifth of the CPU this process would) or by this process, each signed as it leaves
(`--driver python`); this process asks the shop for its notes at the end.

Two kinds of run:

* a burst (`--refunds N`): N webhooks sent with `--concurrency` in flight; the time is from the first webhook
  sent to the last result reported (the shop's clock and this one are both CLOCK_MONOTONIC). With wrk, which
  keeps no request's time of leaving, webhook to reported is read from the store (arrival to reported);
* a steady rate (`--rate R --duration S`): a paced generator sends R webhooks a second for S seconds, whatever
  the answers; each refund's time from its webhook leaving to its result reaching the shop, p50 / p99 / max.

Every run checks that each acknowledged refund was reported, with the sandbox's verdict (SUCCESS), and that
no trade was refunded twice at the sandbox; the exit status is 1 when one was not. Also reported: the peak RSS
of `serve` (VmHWM) and the CPU each process spent, the generator's included.

    python bench/e2e.py                                       # 10,000 and 100,000 refunds, SQLite
    python bench/e2e.py --refunds 10000 --backends sqlite,postgres --json
    python bench/e2e.py --rate 1000 --duration 30             # p99 webhook to reported at 1,000 refunds/s
    python bench/e2e.py --refunds 10000 --profile /tmp/prof   # serve sampled by py-spy (collapsed stacks)
    python bench/e2e.py --refunds 10000 --ab main --rounds 3  # serve of main (A) against this checkout (B)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import yaml
from aiohttp import web
from refund_adapter_generic import standard_webhooks
from refund_adapter_generic.shop import signed_generic_webhook

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # the two-build helpers
import ingest  # the sibling benchmark's process helpers
import wrk_driver

from refund_adapter.event_loop import new_event_loop
from refund_adapter.testing import TEST_ADMIN_TOKEN, free_port

PARTNER = "2088101122136241"
MD5_KEY = "e2e-bench-md5-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(b"end-to-end-benchmark-secret").decode()
SHOP = "e2e"
AMOUNT, PAID = "1.00", "2.00"


# --- the shop ------------------------------------------------------------------------------------------------


def shop_server(port: int) -> None:
    """A shop on the generic platform: verifies each result callback's signature, keeps the first of each
    webhook-id (the time it arrived and the result) and counts the repeats. `GET /count`, `GET /results`."""
    first: dict[str, tuple[float, str, str | None]] = {}  # webhook-id -> (monotonic time, refund_id, code)
    counts = {"deliveries": 0, "refused": 0}

    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            standard_webhooks.verify(SECRET, request.headers, body, now=time.time())
        except standard_webhooks.WebhookVerificationError:
            counts["refused"] += 1
            return web.Response(status=401)
        counts["deliveries"] += 1
        message = request.headers["webhook-id"]
        if message not in first:
            result = json.loads(body)
            first[message] = (time.monotonic(), result["refund_id"], result["code"])
        return web.Response(text="ok")

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"results": len(first), **counts})

    async def results(_: web.Request) -> web.Response:
        return web.json_response(list(first.values()))

    app = web.Application()
    app.router.add_post("/callback", callback)
    app.router.add_get("/count", count)
    app.router.add_get("/results", results)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop())


# --- the processes -------------------------------------------------------------------------------------------


@dataclass
class Running:
    serve_url: str
    shop_url: str
    sandbox_url: str
    processes: dict[str, asyncio.subprocess.Process]


Overrides = dict[str, dict[str, Any]]  # serve's config: section -> key -> value (`--set engine.yield_max_seconds=0`)


def write_files(folder: Path, ports: dict[str, int], store_url: str, trades: int, overrides: Overrides) -> Path:
    """serve's configuration (its defaults but for where things are, and `overrides`) and the sandbox's ledger;
    the config's path."""
    serve, shop, sandbox = ports["serve"], ports["shop"], ports["sandbox"]
    config = {
        "server": {"host": "127.0.0.1", "port": serve, "public_url": f"http://127.0.0.1:{serve}",
                   "admin_token": TEST_ADMIN_TOKEN},
        "store": {"url": store_url},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                          "gateway_url": f"http://127.0.0.1:{sandbox}/gateway.do"}}},
        "platforms": {"generic": {"shops": [{"id": SHOP, "secret": SECRET, "alipay_account": "main",
                                              "callback_url": f"http://127.0.0.1:{shop}/callback"}]}},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    # The seller is funded for every refund of the run (the sandbox's default balance would do for 1.00 refunds up
    # to a million; said here so that a larger amount does not quietly run it out).
    seeds = [{"trade_no": trade_no(i), "amount": PAID} for i in range(trades)]
    seeds[0]["seller_balance"] = str(trades * 2)
    (folder / "trades.json").write_text(json.dumps(seeds), "utf-8")
    return path


@contextlib.asynccontextmanager
async def processes(folder: Path, store_url: str, trades: int, profile: Path | None, serve_path: str | None,
                    overrides: Overrides) -> AsyncIterator[Running]:
    """Sandbox, shop and serve (its code from `serve_path` when given: another build); on exit serve is stopped
    first (SIGTERM), then the other two."""
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {name: free_port() for name in ("serve", "shop", "sandbox")}
    config = write_files(folder, ports, store_url, trades, overrides)
    commands = {
        "sandbox": (*ingest.CLI, "sandbox", "--port", str(ports["sandbox"]), "--partner", PARTNER,
                    "--md5-key", MD5_KEY, "--trades", str(folder / "trades.json")),
        "shop": (sys.executable, __file__, "--shop-server", str(ports["shop"])),
        "serve": (*ingest.CLI, "serve", "--config", str(config), "--log-level", "warning"),
    }
    started: dict[str, asyncio.subprocess.Process] = {}
    sampler: asyncio.subprocess.Process | None = None
    try:
        for name, command in commands.items():
            env = {**os.environ, "PYTHONPATH": serve_path} if name == "serve" and serve_path else None
            # In the run's folder: `python -c` puts its working directory first on sys.path, and from the checkout's
            # root that would import the checkout's refund_adapter ahead of `serve_path`'s (bench/ab.py does the same).
            with (folder / f"{name}.log").open("wb") as log:
                started[name] = await asyncio.create_subprocess_exec(*command, stdout=log, env=env, cwd=folder,
                                                                     stderr=asyncio.subprocess.STDOUT)
        running = Running(*(f"http://127.0.0.1:{ports[name]}" for name in ("serve", "shop", "sandbox")), started)
        async with aiohttp.ClientSession() as session:
            await ingest.wait_ready(session, running.serve_url + "/healthz", started["serve"])
            await ingest.wait_ready(session, running.shop_url + "/count", started["shop"])
        if profile is not None:
            sampler = await start_sampler(started["serve"].pid, profile)
        yield running
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            await sampler.wait()
        await ingest.stop_processes(started, ("serve", "sandbox", "shop"))


async def start_sampler(pid: int, profile: Path) -> asyncio.subprocess.Process:
    """py-spy sampling `serve` (100 samples a second, idle frames left out) into `profile`, collapsed stacks."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    profile.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--output", str(profile),
        "--nonblocking", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def store_url(backend: str, folder: Path) -> AsyncIterator[str]:
    """A fresh SQLite file in `folder`, or a database of its own on $REFUND_ADAPTER_TEST_PG's server (dropped)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'refunds.db'}"
        return
    async with ingest.postgres_database("e2e_bench") as url:
        yield url


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (serve may run parts of itself in processes of its own)."""
    found = [pid]
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in tasks.read_text().split():
                found += process_tree(int(child))
    return found


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set (VmHWM) of the process and its descendants, summed, in MB (an upper bound of their
    peak together); None where there is no /proc."""
    peaks = []
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            peaks += [int(line.split()[1]) for line in Path(f"/proc/{member}/status").read_text().splitlines()
                      if line.startswith("VmHWM:")]
    return sum(peaks) / 1024 if peaks else None


# --- the load ------------------------------------------------------------------------------------------------


def trade_no(index: int) -> str:
    return f"2026120777{index:012d}"


def signed(index: int) -> tuple[dict[str, str], bytes]:
    payload = {"refund_id": f"e2e-{index}", "order_id": f"order-{index}", "trade_no": trade_no(index),
               "amount": AMOUNT, "currency": "CNY", "reason": "e2e bench", "paid_amount": PAID}
    return signed_generic_webhook(SECRET, payload, f"msg-e2e-{index}")


@dataclass
class Sent:
    """What the generator saw of each webhook: when it left, how long its answer took, the status."""

    at: list[float]
    answer_s: list[float]
    status: list[int]


@dataclass(frozen=True)
class Load:
    """How the webhooks are sent: a burst with `concurrency` in flight, by wrk (each written ahead) or by this
    process; or this process at a steady `rate` (wrk cannot pace)."""

    concurrency: int
    rate: float | None = None
    driver: str = "wrk"

    @property
    def by_wrk(self) -> bool:
        return self.rate is None and self.driver == "wrk"


async def post(session: aiohttp.ClientSession, url: str, sent: Sent, i: int) -> None:
    """Webhook i, signed as it leaves (a long run would outlast the receiver's five-minute timestamp tolerance)."""
    started = sent.at[i] = time.monotonic()
    headers, body = signed(i)
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            sent.status[i] = resp.status
    except aiohttp.ClientError:
        sent.status[i] = 0
    sent.answer_s[i] = time.monotonic() - started


async def burst(session: aiohttp.ClientSession, url: str, refunds: int, concurrency: int, sent: Sent) -> None:
    """Every webhook, `concurrency` in flight."""
    indices = iter(range(refunds))

    async def worker() -> None:
        for i in indices:
            await post(session, url, sent, i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def paced(session: aiohttp.ClientSession, url: str, refunds: int, rate: float, sent: Sent) -> None:
    """Webhook i leaves at start + i / rate, whatever became of the ones before (an open-loop generator)."""
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    for i in range(refunds):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(post(session, url, sent, i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def wait_reported(session: aiohttp.ClientSession, shop_url: str, expected: int, within: float,
                        process: asyncio.subprocess.Process) -> dict[str, int]:
    """Poll the shop until it has `expected` results (or `within` seconds pass); its counts."""
    deadline = time.monotonic() + within
    while True:
        async with session.get(shop_url + "/count") as resp:
            counts: dict[str, int] = await resp.json()
        if counts["results"] >= expected or time.monotonic() > deadline or process.returncode is not None:
            return counts
        await asyncio.sleep(0.02)


def cpu(pids: dict[str, int]) -> dict[str, float | None]:
    """CPU seconds so far of each process, and of this one (the generator, which signs and sends the webhooks)."""
    return {**{name: ingest.process_cpu_seconds(pid) for name, pid in pids.items()}, "generator": time.process_time()}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def write_burst(url: str, refunds: int, folder: Path) -> Path:
    """Every webhook as raw HTTP for wrk, written before the clock starts; signed now (a burst ends well within
    the receiver's five-minute timestamp tolerance)."""
    records, where = folder / "webhooks", urlsplit(url)
    wrk_driver.write_records(records, 1, (wrk_driver.raw_post(where.netloc, where.path, *signed(i))
                                          for i in range(refunds)))
    return records


async def wrk_burst(url: str, records: Path, refunds: int, connections: int, folder: Path, sent: Sent) -> float:
    """Every webhook once by wrk, `connections` in flight. Fills `sent` with what wrk can tell (how many were
    answered 2xx, the p99 answer time: it keeps percentiles, not each answer); returns wrk's CPU seconds."""
    result = await wrk_driver.run(url, records, 120 + refunds / 100, connections, 1, folder, once=True)
    sent.status[: result.records_2xx] = [200] * result.records_2xx
    sent.answer_s[:] = [result.p99_ms / 1000] * refunds
    return result.cpu_s


async def run_one(backend: str, refunds: int, load: Load, profile: Path | None,
                  overrides: Overrides, serve_path: str | None = None) -> dict[str, Any]:
    """One run on fresh processes and a fresh store: a burst of `refunds`, or `refunds` at `load.rate` a second."""
    sent = Sent([0.0] * refunds, [0.0] * refunds, [0] * refunds)
    wrk_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        folder = Path(tmp)
        try:
            async with store_url(backend, folder) as url:
                async with (processes(folder, url, refunds, profile, serve_path, overrides) as running,
                            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session):
                    pids = {name: process.pid for name, process in running.processes.items()}
                    webhook_url = f"{running.serve_url}/webhooks/generic/{SHOP}"
                    records = write_burst(webhook_url, refunds, folder) if load.by_wrk else None
                    before, started = cpu(pids), time.monotonic()
                    if records is not None:
                        wrk_cpu = await wrk_burst(webhook_url, records, refunds, load.concurrency, folder, sent)
                    elif load.rate is None:
                        await burst(session, webhook_url, refunds, load.concurrency, sent)
                    else:
                        await paced(session, webhook_url, refunds, load.rate, sent)
                    acknowledged_at, at_intake_end = time.monotonic(), cpu(pids)
                    acknowledged = sum(1 for status in sent.status if status == 200)
                    counts = await wait_reported(session, running.shop_url, acknowledged, 120 + refunds / 100,
                                                 running.processes["serve"])
                    after = cpu(pids)
                    rss = peak_rss_mb(pids["serve"])
                    async with session.get(running.shop_url + "/results") as resp:
                        results = await resp.json()
                    async with session.get(running.sandbox_url + "/sandbox/trades") as resp:
                        paid_twice = sum(1 for trade in await resp.json() if trade["refund_count"] > 1)
                stages = await stage_times(url)  # serve has stopped: the store is read as it left it
        except Exception:
            ingest.print_logs(folder)
            raise
    used = spent(before, after)
    used["generator"] = (used["generator"] or 0.0) + wrk_cpu
    summary = summarise(backend, refunds, load, sent, started, acknowledged_at, results, counts, paid_twice, rss,
                        used)
    if load.by_wrk:  # from the refund's arrival at serve (its clock) to the result reported, as the store has it
        summary |= {f"reported_{key}_s": stages["reported"][key] for key in ("p50", "p99", "max")}
    drain_cpu = spent(at_intake_end, after)["serve"]
    return {**summary, "serve_cpu_after_intake_s": None if drain_cpu is None else round(drain_cpu, 2),
            "stages_s": stages}


def spent(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    """CPU seconds each process spent between two readings."""
    result: dict[str, float | None] = {}
    for name, start in before.items():
        end = after[name]
        result[name] = None if start is None or end is None else end - start
    return result


# Each refund's times as the store keeps them, from its arrival (created_at) to each stage: its batch made, sent,
# acknowledged by the gateway, notified, and the result reported to the shop.
STAGES = """SELECT b.created_at - r.created_at AS batched, b.sent_at - r.created_at AS sent,
                   b.acknowledged_at - r.created_at AS acknowledged, b.notified_at - r.created_at AS notified,
                   r.reported_at - r.created_at AS reported
            FROM refunds AS r JOIN batches AS b ON b.id = r.batch_id"""


async def stage_times(url: str) -> dict[str, dict[str, float | None]]:
    """p50, p99 and max of each stage's time since the refund's arrival, from the store (seconds)."""
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)) as db:
            rows = db.execute(STAGES).fetchall()
    else:
        conn = await asyncpg.connect(url)
        try:
            rows = [tuple(row) for row in await conn.fetch(STAGES)]
        finally:
            await conn.close()
    names = ("batched", "sent", "acknowledged", "notified", "reported")
    stages: dict[str, dict[str, float | None]] = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows if row[index] is not None]
        stages[name] = {"p50": round(quantile(values, 0.5), 3) if values else None,
                        "p99": round(quantile(values, 0.99), 3) if values else None,
                        "max": round(max(values), 3) if values else None}
    return stages


def summarise(backend: str, refunds: int, load: Load, sent: Sent, started: float, acknowledged_at: float,
              results: list[list[Any]], counts: dict[str, int], paid_twice: int, rss: float | None,
              cpu_s: dict[str, float | None]) -> dict[str, Any]:
    index_of = {f"e2e-{i}": i for i in range(refunds)}
    # wrk keeps no webhook's time of leaving: then the store's stage times (since arrival) say it
    latencies = [] if load.by_wrk else [at - sent.at[index_of[refund_id]] for at, refund_id, _ in results]
    last = max((at for at, _, _ in results), default=started)
    elapsed = last - started
    acknowledged = sum(1 for status in sent.status if status == 200)
    wrong = sum(1 for _, _, code in results if code not in (None, "SUCCESS"))  # every trade is paid and funded
    summary: dict[str, Any] = {
        "backend": backend, "refunds": refunds, "generator": "wrk" if load.by_wrk else "python",
        "mode": "burst" if load.rate is None else f"{load.rate:g}/s",
        "acknowledged": acknowledged, "reported": len(results), "wrong_results": wrong, "paid_twice": paid_twice,
        "repeated_deliveries": counts["deliveries"] - len(results),
        "elapsed_s": round(elapsed, 3), "refunds_per_s": round(len(results) / elapsed, 1) if elapsed else None,
        "intake_s": round(acknowledged_at - started, 3),
        "drain_s": round(last - acknowledged_at, 3),  # the last webhook answered to the last result reported
        "webhook_answer_p99_ms": round(quantile(sent.answer_s, 0.99) * 1000, 1),
        "reported_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "reported_p99_s": round(quantile(latencies, 0.99), 3) if latencies else None,
        "reported_max_s": round(max(latencies), 3) if latencies else None,
        "serve_peak_rss_mb": None if rss is None else round(rss, 1),
        "cpu_s": {name: None if value is None else round(value, 2) for name, value in cpu_s.items()},
        "serve_cpu_us_per_refund": None if cpu_s["serve"] is None else round(cpu_s["serve"] / refunds * 1e6, 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }
    summary["ok"] = (acknowledged == refunds == len(results) and not wrong and not paid_twice)
    return summary


def show(summary: dict[str, Any]) -> None:
    print(f"{summary['backend']:>8} {summary['mode']:>7} {summary['refunds']:>7} refunds: "
          f"{summary['elapsed_s']:7.2f} s ({summary['refunds_per_s']}/s), intake {summary['intake_s']:.2f} s, "
          f"then {summary['drain_s']:.2f} s to the last report, "
          f"webhook to reported p50 {summary['reported_p50_s']} s p99 {summary['reported_p99_s']} s "
          f"max {summary['reported_max_s']} s; answer p99 {summary['webhook_answer_p99_ms']} ms; serve peak RSS "
          f"{summary['serve_peak_rss_mb']} MB; CPU s {summary['cpu_s']}; reported {summary['reported']}/"
          f"{summary['acknowledged']}, wrong {summary['wrong_results']}, paid twice {summary['paid_twice']}, "
          f"repeats {summary['repeated_deliveries']}; load {summary['load_average']}; ok {summary['ok']}")
    print("          since arrival (p50/p99 s): " + ", ".join(
        f"{name} {times['p50']}/{times['p99']}" for name, times in summary.get("stages_s", {}).items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refunds", default="10000,100000",
                        help="burst sizes, comma-separated, one run each (default 10000,100000)")
    parser.add_argument("--backends", default="sqlite", help="sqlite, postgres or both, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64, help="webhooks in flight in a burst (default 64)")
    parser.add_argument("--driver", choices=("wrk", "python"), default="wrk" if wrk_driver.available() else "python",
                        help="a burst's generator: wrk, each webhook written ahead (default where installed), or "
                             "this process with aiohttp (a steady --rate always is)")
    parser.add_argument("--rate", type=float, help="a steady rate (webhooks a second) instead of bursts")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds at --rate (default 30)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample serve with py-spy during each run; collapsed stacks in DIR")
    parser.add_argument("--ab", metavar="REVISION",
                        help="A/B: serve of REVISION (A) and of this checkout (B), alternately, --rounds times each")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of an --ab comparison (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting of serve's config, e.g. engine.yield_max_seconds=0 (repeatable)")
    parser.add_argument("--json", action="store_true", help="also print each run as one JSON object")
    parser.add_argument("--shop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shop_server:
        shop_server(args.shop_server)
        return
    sizes = [int(args.rate * args.duration)] if args.rate else [int(n) for n in args.refunds.split(",")]
    overrides: Overrides = {}
    for setting in args.set:
        name, _, value = setting.partition("=")
        section, _, key = name.partition(".")
        overrides.setdefault(section, {})[key] = yaml.safe_load(value)
    runs = [(backend, refunds) for backend in args.backends.split(",") for refunds in sizes]
    load = Load(args.concurrency, args.rate, args.driver)
    if args.ab:
        sys.exit(0 if compare(args.ab, runs, args.rounds, load, overrides, args.json) else 1)
    ok = True
    for backend, refunds in runs:
        profile = None if args.profile is None else args.profile / f"serve-{backend}-{refunds}.txt"
        summary = asyncio.run(run_one(backend, refunds, load, profile, overrides))
        show(summary)
        if args.json:
            print(json.dumps(summary))
        ok = ok and summary["ok"]
    sys.exit(0 if ok else 1)


COMPARED = ("elapsed_s", "drain_s", "reported_p99_s", "serve_peak_rss_mb", "serve_cpu_us_per_refund",
            "serve_cpu_after_intake_s")


def compare(revision: str, runs: list[tuple[str, int]], rounds: int, load: Load, overrides: Overrides,
            as_json: bool) -> bool:
    """Each run `rounds` times with serve of `revision` (A) and of this checkout (B), A then B, then B then A...;
    the paired B/A ratios of the elapsed time, the p99 webhook to reported, serve's peak RSS and its CPU per refund
    (on a busy machine the steadiest of the four)."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="e2e-ab-") as tmp, ab.revision_on_path(revision, Path(tmp)) as base:
        for backend, refunds in runs:
            pairs: list[dict[str, dict[str, Any]]] = []
            for n in range(rounds):
                pair = {}
                for build in ("AB" if n % 2 == 0 else "BA"):
                    pair[build] = asyncio.run(run_one(backend, refunds, load, None, overrides,
                                                      base if build == "A" else None))
                    print(build, end=" ")
                    show(pair[build])
                    ok = ok and pair[build]["ok"]
                pairs.append(pair)
            ratios = {key: [round(p["B"][key] / p["A"][key], 3) for p in pairs if p["A"][key]] for key in COMPARED}
            result = {"backend": backend, "refunds": refunds, "A": revision, "B": "working tree",
                      **{f"b_over_a_{key}": values for key, values in ratios.items()},
                      **{f"{build}_{key}": [p[build][key] for p in pairs] for build in "AB" for key in COMPARED}}
            for key, values in ratios.items():
                print(f"{backend} {refunds}: B/A {key}: median {statistics.median(values):.3f}, pairs {values}")
            if as_json:
                print(json.dumps(result))
    return ok


if __name__ == "__main__":
    main()
