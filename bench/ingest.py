"""Webhook ingest throughput: `refund-adapter serve` (SQLite) against a bare aiohttp handler, in one run.

Three subprocesses on free loopback ports: the Alipay sandbox, `refund-adapter serve` with a temporary SQLite
file (its gateway is the sandbox, its shop callbacks go to the bare server) and the bare server, which only
reads the body and answers 200. This process is the load generator: a fixed number of requests with a fixed
concurrency, every one a `generic` refund webhook with its own refund id and trade number, signed before the
clock starts. After a warm-up (long enough for serve's SQLite write-ahead log to reach its working size: until
then its file grows with every commit, and a commit costs about 40% more) the targets alternate (bare, serve,
bare, serve, ...) so machine noise hits both, and the medians are reported. Before each round the adapter's
engine is let to drain (batches submitted, notifies and reports done) so that its background work never runs
during a bare round.

Afterwards `serve` is stopped with SIGTERM and the SQLite file is read: every acknowledged (200) refund must be
on disk, or the exit status is 1 (also when any request failed).

    python bench/ingest.py [--requests 5000] [--concurrency 64] [--rounds 5] [--warmup 3000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from refund_adapter_generic.shop import signed_generic_webhook

from refund_adapter.event_loop import new_event_loop
from refund_adapter.testing import ADMIN_HEADERS, TEST_ADMIN_TOKEN, free_port

PARTNER = "2088101122136241"
MD5_KEY = "ingest-bench-md5-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(b"ingest-benchmark-secret!").decode()
SHOP = "bench"
TARGETS = ("bare", "serve")
IN_FLIGHT_STATES = ("received", "batched", "submitted", "unknown")  # refunds the engine is still working on
SETTLE_WITHIN_S = 120.0
STOP_WITHIN_S = 30.0
# Serve's WAL grows to its working size (1000 pages, then checkpoints reuse it) over its first ~2,300 webhooks,
# with commits about 40% slower meanwhile: a warm-up shorter than that measures start-up, not throughput.
WARMUP = 3000
CLI = (sys.executable, "-c", "from refund_adapter.cli import main; main()")


def bare_server(port: int) -> None:
    """The baseline: read the body, answer 200. Nothing else. On the event loop serve runs on by default (uvloop
    where installed), so that the two servers differ only in what the handler does."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop())


@dataclass(frozen=True)
class Signed:
    """One request, ready to send."""

    url: str
    headers: dict[str, str]
    body: bytes
    refund_id: str


@dataclass
class Round:
    """What one round against one target measured."""

    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    acknowledged: list[str] = field(repr=False)
    drain_s: float = 0.0  # serve rounds: from the round's end until every refund was final and reported
    server_cpu_us: float | None = None  # CPU (user + system) of the target's process per request; None off Linux
    server_busy: float | None = None  # that CPU over the round's wall time: 1.0 is one core saturated
    generator_cpu_us: float = 0.0  # CPU of this process (the load generator) per request
    generator_busy: float = 0.0


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured_drive(
    session: aiohttp.ClientSession, target: str, work: list[Signed], concurrency: int, pid: int
) -> Round:
    """`drive`, plus the CPU that the target's process and this one spent on the round."""
    server_before, generator_before, started = process_cpu_seconds(pid), time.process_time(), time.perf_counter()
    result = await drive(session, target, work, concurrency)
    server_after, generator_after, wall = process_cpu_seconds(pid), time.process_time(), time.perf_counter() - started
    if server_before is not None and server_after is not None:
        result.server_cpu_us = (server_after - server_before) / len(work) * 1e6
        result.server_busy = (server_after - server_before) / wall
    result.generator_cpu_us = (generator_after - generator_before) / len(work) * 1e6
    result.generator_busy = (generator_after - generator_before) / wall
    return result


def trade_no(index: int) -> str:
    """A distinct, well-formed Alipay trade number per request."""
    return f"2026112588{index:012d}"


def prepare(base_url: str, indices: range) -> list[Signed]:
    """Sign one webhook per index (outside the timed part)."""
    url = f"{base_url}/webhooks/generic/{SHOP}"
    work = []
    for i in indices:
        payload = {"refund_id": f"bench-{i}", "order_id": f"order-{i}", "trade_no": trade_no(i), "amount": "1.00",
                   "currency": "CNY", "reason": "ingest bench", "paid_amount": "2.00"}
        headers, body = signed_generic_webhook(SECRET, payload, f"msg-bench-{i}")
        work.append(Signed(url, headers, body, payload["refund_id"]))
    return work


async def drive(session: aiohttp.ClientSession, target: str, work: list[Signed], concurrency: int) -> Round:
    """Send `work` with `concurrency` requests in flight; a 200 is an acknowledgement, anything else an error."""
    pending: Iterator[Signed] = iter(work)
    latencies: list[float] = []
    acknowledged: list[str] = []

    async def worker() -> None:
        for item in pending:
            started = time.perf_counter()
            try:
                async with session.post(item.url, data=item.body, headers=item.headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                status = 0
            latencies.append(time.perf_counter() - started)
            if status == 200:
                acknowledged.append(item.refund_id)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Round(target, len(work) / elapsed, cuts[49] * 1000, cuts[98] * 1000, len(work) - len(acknowledged),
                 acknowledged)


async def wait_ready(session: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process) -> None:
    """Poll `url` until it answers 200; RuntimeError if the process exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the server behind {url} exited with status {process.returncode}")
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within 30 s")


async def settle(session: aiohttp.ClientSession, serve_url: str) -> float:
    """Wait until the adapter has no refund or report in flight (a warning on stderr if it takes too long);
    returns the seconds waited."""
    started = time.monotonic()
    deadline = started + SETTLE_WITHIN_S
    while True:
        async with session.get(f"{serve_url}/-/stats", headers=ADMIN_HEADERS) as resp:
            counts = await resp.json()
        busy = sum(counts["refunds"].get(state, 0) for state in IN_FLIGHT_STATES) + counts["reports"].get("pending", 0)
        if not busy:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            print(f"warning: the adapter still has {busy} refunds or reports in flight; measuring anyway",
                  file=sys.stderr)
            return time.monotonic() - started
        await asyncio.sleep(0.05)


def write_files(
    folder: Path, serve_port: int, sandbox_port: int, bare_port: int, trades: int, yield_max_s: float | None = None
) -> Path:
    """The serve config (YAML) and the sandbox's trade ledger (JSON) in `folder`; returns the config's path."""
    config = {
        "server": {"host": "127.0.0.1", "port": serve_port, "public_url": f"http://127.0.0.1:{serve_port}",
                   "admin_token": TEST_ADMIN_TOKEN},
        "store": {"url": f"sqlite:///{folder / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                          "gateway_url": f"http://127.0.0.1:{sandbox_port}/gateway.do"}}},
        "platforms": {"generic": {"shops": [{"id": SHOP, "secret": SECRET, "alipay_account": "main",
                                              "callback_url": f"http://127.0.0.1:{bare_port}/callback"}]}},
    }
    if yield_max_s is not None:
        config["engine"] = {"yield_max_seconds": yield_max_s}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    seeds = [{"trade_no": trade_no(i), "amount": "2.00"} for i in range(trades)]
    (folder / "trades.json").write_text(json.dumps(seeds), "utf-8")
    return path


@dataclass
class Servers:
    """The three server processes and where they listen."""

    bare_url: str
    serve_url: str
    processes: dict[str, asyncio.subprocess.Process]


@contextlib.asynccontextmanager
async def servers(folder: Path, trades: int, yield_max_s: float | None) -> AsyncIterator[Servers]:
    """Start sandbox, serve and the bare server; on exit stop serve with SIGTERM (so it drains) and the rest."""
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    bare_port, serve_port, sandbox_port = ports
    config = write_files(folder, serve_port, sandbox_port, bare_port, trades, yield_max_s)
    commands = {
        "bare": (sys.executable, __file__, "--bare-server", str(bare_port)),
        "sandbox": (*CLI, "sandbox", "--port", str(sandbox_port), "--partner", PARTNER, "--md5-key", MD5_KEY,
                    "--trades", str(folder / "trades.json")),
        "serve": (*CLI, "serve", "--config", str(config), "--log-level", "warning"),
    }
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, command in commands.items():
            with (folder / f"{name}.log").open("wb") as log:
                processes[name] = await asyncio.create_subprocess_exec(
                    *command, stdout=log, stderr=asyncio.subprocess.STDOUT
                )
        yield Servers(f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{serve_port}", processes)
    finally:
        for name in ("serve", "sandbox", "bare"):  # serve first: it still talks to the other two while draining
            process = processes.get(name)
            if process is None or process.returncode is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_WITHIN_S)
            except TimeoutError:
                print(f"warning: {name} did not stop within {STOP_WITHIN_S:.0f} s of SIGTERM; killed", file=sys.stderr)
                process.kill()
                await process.wait()


def on_disk(database: Path, acknowledged: list[str]) -> int:
    """How many of the acknowledged refund ids are stored, reading the SQLite file read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT platform_refund_id FROM refunds WHERE platform = 'generic' AND shop = ?", (SHOP,))
        stored = {row[0] for row in rows}
    return len(stored.intersection(acknowledged))


def print_logs(folder: Path) -> None:
    """The end of each server's log, on stderr (when the run fails)."""
    for log in sorted(folder.glob("*.log")):
        print(f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)


def median_or_none(values: list[float | None], digits: int = 1) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), digits) if known else None


def summarise(rounds: list[Round], acknowledged: int, stored: int, settings: dict[str, Any]) -> dict[str, Any]:
    """Medians per target, the serve/bare ratio and the durability check, as one JSON-ready object."""
    summary: dict[str, Any] = {}
    for target in TARGETS:
        mine = [r for r in rounds if r.target == target]
        summary[target] = {
            "requests_per_s": round(statistics.median(r.requests_per_s for r in mine), 1),
            "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
            "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
            "errors": sum(r.errors for r in mine),
            "rounds_requests_per_s": [round(r.requests_per_s, 1) for r in mine],
            "server_cpu_us_per_request": median_or_none([r.server_cpu_us for r in mine]),
            "server_busy": median_or_none([r.server_busy for r in mine], 2),
            "generator_cpu_us_per_request": round(statistics.median(r.generator_cpu_us for r in mine), 1),
            "generator_busy": round(statistics.median(r.generator_busy for r in mine), 2),
        }
    summary["serve"]["drain_s"] = round(statistics.median(r.drain_s for r in rounds if r.target == "serve"), 2)
    summary["ratio"] = round(summary["serve"]["requests_per_s"] / summary["bare"]["requests_per_s"], 3)
    pairs = zip(rounds[::2], rounds[1::2], strict=True)
    summary["rounds_ratio"] = [round(serve.requests_per_s / bare.requests_per_s, 3) for bare, serve in pairs]
    summary["acknowledged"] = acknowledged
    summary["acknowledged_on_disk"] = stored
    summary["settings"] = {**settings, "cpus": os.cpu_count()}
    return summary


async def run(
    requests: int, concurrency: int, rounds: int, warmup: int, yield_max_s: float | None = None
) -> dict[str, Any]:
    """Warm up both targets, then `rounds` alternating rounds; stop serve and check the SQLite file."""
    total = 2 * (warmup + rounds * requests)
    results: list[Round] = []
    acknowledged: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = Path(tmp)
        try:
            async with servers(folder, total, yield_max_s) as running, contextlib.AsyncExitStack() as stack:
                sessions = {
                    target: await stack.enter_async_context(
                        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
                    )
                    for target in TARGETS
                }
                urls = {"bare": running.bare_url, "serve": running.serve_url}
                await wait_ready(sessions["bare"], running.bare_url + "/", running.processes["bare"])
                await wait_ready(sessions["serve"], running.serve_url + "/healthz", running.processes["serve"])
                next_index = 0
                schedule = [(target, warmup, False) for target in TARGETS]
                schedule += [(target, requests, True) for _ in range(rounds) for target in TARGETS]
                for target, count, measured in schedule:
                    work = prepare(urls[target], range(next_index, next_index + count))
                    next_index += count
                    await settle(sessions["serve"], running.serve_url)
                    result = await measured_drive(sessions[target], target, work, concurrency,
                                                  running.processes[target].pid)
                    if target == "serve":
                        acknowledged += result.acknowledged
                        result.drain_s = await settle(sessions["serve"], running.serve_url)
                    if measured:
                        results.append(result)
        except Exception:
            print_logs(folder)
            raise
        stored = on_disk(folder / "refunds.db", acknowledged)
    settings = {"requests": requests, "concurrency": concurrency, "rounds": rounds, "warmup": warmup,
                "engine_yield_max_seconds": yield_max_s}
    return summarise(results, len(acknowledged), stored, settings)


def main() -> None:
    """Parse the flags; run the bare server (internal) or the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests per target per round (default 5000)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per target (default 5)")
    parser.add_argument("--warmup", type=int, default=WARMUP,
                        help=f"unmeasured requests per target first (default {WARMUP})")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    parser.add_argument("--engine-yield-max", type=float, metavar="SECONDS",
                        help="serve's engine.yield_max_seconds (default: the config default; 0: the engine never "
                             "gives way to webhooks)")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    summary = asyncio.run(run(args.requests, args.concurrency, args.rounds, args.warmup, args.engine_yield_max))
    for target in TARGETS:
        row = summary[target]
        print(f"{target:>5}: {row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms"
              f"  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}  rounds {row['rounds_requests_per_s']}")
    print(f"ratio serve/bare: {summary['ratio']} (per round {summary['rounds_ratio']})")
    print(f"serve: every refund of a round final and reported {summary['serve']['drain_s']} s after its last "
          "acknowledgement (median)")
    for target in TARGETS:
        row = summary[target]
        if row["server_cpu_us_per_request"] is not None:
            print(f"{target:>5}: server CPU {row['server_cpu_us_per_request']:6.1f} µs/request (busy "
                  f"{row['server_busy']:.2f} core); load generator {row['generator_cpu_us_per_request']:6.1f} "
                  f"µs/request (busy {row['generator_busy']:.2f} core)")
    print(f"acknowledged refunds on disk: {summary['acknowledged_on_disk']} / {summary['acknowledged']}")
    if args.json:
        print(json.dumps(summary))
    failed = summary["bare"]["errors"] + summary["serve"]["errors"]
    if summary["acknowledged_on_disk"] != summary["acknowledged"] or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
