"""Webhook ingest under sustained load: `refund-adapter serve` against a bare aiohttp handler, side by side.

Five subprocesses on free loopback ports: the Alipay sandbox, a shop that takes the result callbacks (it counts
them), two bare servers that only read the body and answer 200 (one on uvloop, the loop `serve` runs on, one on
asyncio's), and `refund-adapter serve` (SQLite in a temporary folder, or a fresh PostgreSQL database), whose gateway
is the sandbox and whose shop is the counting one. So while webhooks arrive the engine works as in production:
batches go to the sandbox, notifies come back, results are reported.

The default driver is `wrk` (Debian's package): for `--duration` seconds, `--connections` kept-alive connections
post distinct signed `generic` webhooks (written ahead: bench/wrk_driver.py). Each round runs bare (uvloop), bare
(asyncio), then serve; before each the adapter is let to finish its work, so its catch-up never runs during a bare
round, and after serve's the time it takes to finish (every refund final and reported) is the drain time.
`--driver python` is the earlier driver: this process posts a fixed number of requests per round with aiohttp.

Per round: requests/s, p50/p99 latency, the CPU per request of the target's processes (from /proc; serve's
includes its engine process) and of the load generator, and the load average. After the run: every acknowledged
(2xx) webhook must be stored and nothing stored twice, every stored refund succeeded, reported, and received by
the shop; the exit status is 1 otherwise.

    python bench/ingest.py [--duration 30] [--rounds 2] [--connections 64] [--store sqlite|postgres] [--json]
    python bench/ingest.py --driver python [--requests 5000] [--rounds 5] [--concurrency 64]
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
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml
from aiohttp import web
from refund_adapter_generic.shop import signed_generic_webhook

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk_driver  # the sibling module

from refund_adapter.event_loop import new_event_loop
from refund_adapter.testing import ADMIN_HEADERS, TEST_ADMIN_TOKEN, free_port

PARTNER = "2088101122136241"
MD5_KEY = "ingest-bench-md5-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(b"ingest-benchmark-secret!").decode()
SHOP = "bench"
BARES = ("bare", "bare-asyncio")  # "bare" is on uvloop, as serve is: the ratio is against it
TARGETS = (*BARES, "serve")
IN_FLIGHT_STATES = ("received", "batched", "submitted", "unknown")  # refunds the engine is still working on
SETTLE_WITHIN_S = 180.0
STOP_WITHIN_S = 30.0
PG_ADMIN = os.environ.get("REFUND_ADAPTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# Serve's SQLite WAL grows to its working size over its first ~2,300 webhooks, with commits about 40% slower
# meanwhile: a warm-up shorter than that measures start-up, not throughput.
WARMUP = 3000
SEED_CHUNK = 10_000  # trades per POST to the sandbox (its body limit is 1 MiB)
RECORDS_HEADROOM = 1.25  # serve's records: this times the best bare rate times the duration
CLI = (sys.executable, "-c", "from refund_adapter.cli import main; main()")


def bare_server(port: int, uvloop: bool) -> None:
    """The baseline: read the body, answer 200. Nothing else."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop(uvloop))


def shop_server(port: int) -> None:
    """The shop the results are reported to: answers 200, counts deliveries and distinct `webhook-id`s
    (`GET /count`)."""
    seen: set[str] = set()
    deliveries = 0

    async def callback(request: web.Request) -> web.Response:
        nonlocal deliveries
        await request.read()
        deliveries += 1
        seen.add(request.headers.get("webhook-id", ""))
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"deliveries": deliveries, "distinct": len(seen)})

    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_post("/{tail:.*}", callback)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, loop=new_event_loop())


@dataclass(frozen=True)
class Signed:
    """One request, ready to send (the Python driver)."""

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
    errors: int  # answers other than 2xx, and requests that got none
    acknowledged: list[str] = field(repr=False)  # Python driver: the ids answered 2xx
    acknowledged_count: int = 0
    sent: int = 0  # serve rounds: requests sent (answered or not), the first `sent` of the round's ids
    first_index: int = 0  # serve rounds: the index of the round's first refund id
    wraps: int = 0  # wrk: times its records ran out (repeats were sent)
    drain_s: float = 0.0  # serve rounds: from the round's end until every refund was final and reported
    server_cpu_us: float | None = None  # CPU (user + system) of the target's processes per request; None off Linux
    server_busy: float | None = None  # that CPU over the round's wall time: 1.0 is one core saturated
    intake_cpu_us: float | None = None  # serve: the part of server_cpu_us spent by its web process alone
    server_cpu_started: float | None = field(default=None, repr=False)  # the processes' CPU seconds at the start
    # serve rounds: the CPU per request from the round's start until drained (the engine's deferred work included)
    server_cpu_us_with_drain: float | None = None
    # serve rounds: the sandbox's and the shop's CPU per request over the same time (the rest of the loop's work)
    peers_cpu_us: float | None = None
    generator_cpu_us: float = 0.0  # CPU of the load generator per request
    generator_busy: float = 0.0
    load_average: float = 0.0  # the 1-minute load average as the round started


def process_cpu_seconds(pid: int, *, tree: bool = True) -> float | None:
    """User + system CPU seconds of process `pid` and (`tree`) its live descendants so far, from /proc (None where
    there is no /proc). A descendant that exits during a round is counted only up to its last reading."""
    members = _descendants(pid) if tree else [pid]
    total = 0.0
    for member in members:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if member == pid:
                return None
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        member = todo.pop()
        found.append(member)
        todo += parents.get(member, [])
    return found


def trade_no(index: int) -> str:
    """A distinct, well-formed Alipay trade number per request."""
    return f"2026112588{index:012d}"


def webhook(index: int) -> tuple[dict[str, str], bytes]:
    """The signed `generic` webhook of refund `bench-<index>` (paid amount = refund amount: a second payment of
    its trade would fail at the sandbox and show)."""
    payload = {"refund_id": f"bench-{index}", "order_id": f"order-{index}", "trade_no": trade_no(index),
               "amount": "1.00", "currency": "CNY", "reason": "ingest bench", "paid_amount": "1.00"}
    return signed_generic_webhook(SECRET, payload, f"msg-bench-{index}")


def prepare(base_url: str, indices: range) -> list[Signed]:
    """Sign one webhook per index (outside the timed part)."""
    url = f"{base_url}/webhooks/generic/{SHOP}"
    return [Signed(url, *webhook(i), f"bench-{i}") for i in indices]


def raw_webhooks(base_url: str, indices: range) -> Iterator[bytes]:
    """The same webhooks as raw HTTP requests (the wrk driver)."""
    host = base_url.removeprefix("http://")
    for i in indices:
        headers, body = webhook(i)
        yield wrk_driver.raw_post(host, f"/webhooks/generic/{SHOP}", headers, body)


def measure_cpu(pids: Iterable[int]) -> float | None:
    readings = [process_cpu_seconds(pid) for pid in pids]
    return None if any(r is None for r in readings) else sum(r for r in readings if r is not None)


async def measured_drive(
    session: aiohttp.ClientSession, target: str, work: list[Signed], concurrency: int, pid: int
) -> Round:
    """The Python driver's round: `drive`, plus the CPU that the target's processes and this one spent."""
    server_before, generator_before, started = process_cpu_seconds(pid), time.process_time(), time.perf_counter()
    load = os.getloadavg()[0]
    result = await drive(session, target, work, concurrency)
    server_after, generator_after, wall = process_cpu_seconds(pid), time.process_time(), time.perf_counter() - started
    result.server_cpu_started = server_before
    if server_before is not None and server_after is not None:
        result.server_cpu_us = (server_after - server_before) / len(work) * 1e6
        result.server_busy = (server_after - server_before) / wall
    result.generator_cpu_us = (generator_after - generator_before) / len(work) * 1e6
    result.generator_busy = (generator_after - generator_before) / wall
    result.load_average = load
    return result


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
                 acknowledged, len(acknowledged), sent=len(work))


async def wrk_round(
    target: str, url: str, records: Path, duration_s: float, connections: int, threads: int, folder: Path, pid: int
) -> Round:
    """One wrk run against `url`, with the CPU of the target's processes (`pid` and its children)."""
    load = os.getloadavg()[0]
    server_before, started = process_cpu_seconds(pid), time.perf_counter()
    intake_before = process_cpu_seconds(pid, tree=False)
    result = await wrk_driver.run(url, records, duration_s, connections, threads, folder)
    server_after, wall = process_cpu_seconds(pid), time.perf_counter() - started
    intake_after = process_cpu_seconds(pid, tree=False)
    answered = max(result.answered, 1)
    round_ = Round(target, result.requests_per_s, result.p50_ms, result.p99_ms,
                   result.non_2xx + result.socket_errors, [], result.acknowledged, sent=result.sent,
                   wraps=result.wraps, generator_cpu_us=result.cpu_s / answered * 1e6,
                   generator_busy=result.cpu_s / wall, load_average=load)
    round_.server_cpu_started = server_before
    if intake_before is not None and intake_after is not None:
        round_.intake_cpu_us = (intake_after - intake_before) / answered * 1e6
    if server_before is not None and server_after is not None:
        round_.server_cpu_us = (server_after - server_before) / answered * 1e6
        round_.server_busy = (server_after - server_before) / wall
    return round_


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


async def stats(session: aiohttp.ClientSession, serve_url: str) -> dict[str, Any]:
    async with session.get(f"{serve_url}/-/stats", headers=ADMIN_HEADERS) as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def settle(session: aiohttp.ClientSession, serve_url: str) -> float:
    """Wait until the adapter has no refund or report in flight (a warning on stderr if it takes too long);
    returns the seconds waited."""
    started = time.monotonic()
    deadline = started + SETTLE_WITHIN_S
    while True:
        counts = await stats(session, serve_url)
        busy = sum(counts["refunds"].get(state, 0) for state in IN_FLIGHT_STATES) + counts["reports"].get("pending", 0)
        if not busy:
            return time.monotonic() - started
        if time.monotonic() > deadline:
            print(f"warning: the adapter still has {busy} refunds or reports in flight; measuring anyway",
                  file=sys.stderr)
            return time.monotonic() - started
        await asyncio.sleep(0.05)


async def drained(session: aiohttp.ClientSession, serve_url: str, result: Round, pid: int) -> None:
    """Wait for serve to finish the round's work; set the round's drain time and its CPU per request including
    that work (an engine that defers its work to after a burst does it then)."""
    result.drain_s = await settle(session, serve_url)
    after = process_cpu_seconds(pid)
    if after is not None and result.server_cpu_started is not None:
        result.server_cpu_us_with_drain = (after - result.server_cpu_started) / max(result.acknowledged_count, 1) * 1e6


async def seed_trades(session: aiohttp.ClientSession, sandbox_url: str, indices: range) -> None:
    """Tell the sandbox about the trades of `indices` (each paid 1.00, the refund's amount)."""
    for start in range(indices.start, indices.stop, SEED_CHUNK):
        chunk = [{"trade_no": trade_no(i), "amount": "1.00"}
                 for i in range(start, min(start + SEED_CHUNK, indices.stop))]
        async with session.post(f"{sandbox_url}/sandbox/trades", json=chunk) as resp:
            if resp.status != 201:
                raise RuntimeError(f"the sandbox refused the trades: {resp.status} {await resp.text()}")


def write_files(
    folder: Path, serve_port: int, sandbox_port: int, shop_port: int, trades: int,
    settings: Sequence[str] = (), store_url: str | None = None,
) -> Path:
    """The serve config (YAML) and, when `trades`, the sandbox's trade ledger (JSON) in `folder`; returns the
    config's path. `settings`: `section.key=value` lines (the value read as YAML) put into the config."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": serve_port, "public_url": f"http://127.0.0.1:{serve_port}",
                   "admin_token": TEST_ADMIN_TOKEN},
        "store": {"url": store_url or f"sqlite:///{folder / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                          "gateway_url": f"http://127.0.0.1:{sandbox_port}/gateway.do"}}},
        "platforms": {"generic": {"shops": [{"id": SHOP, "secret": SECRET, "alipay_account": "main",
                                              "callback_url": f"http://127.0.0.1:{shop_port}/callback"}]}},
    }
    for setting in settings:
        dotted, _, value = setting.partition("=")
        *sections, key = dotted.split(".")
        place = config
        for section in sections:
            place = place.setdefault(section, {})
        place[key] = yaml.safe_load(value)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    if trades:
        seeds = [{"trade_no": trade_no(i), "amount": "1.00"} for i in range(trades)]
        (folder / "trades.json").write_text(json.dumps(seeds), "utf-8")
    return path


@dataclass
class Servers:
    """The server processes and where they listen."""

    urls: dict[str, str]
    processes: dict[str, asyncio.subprocess.Process]


@contextlib.asynccontextmanager
async def servers(folder: Path, trades: int, settings: Sequence[str], store_url: str | None
                  ) -> AsyncIterator[Servers]:
    """Start the sandbox, the shop, both bare servers and serve; on exit stop serve with SIGTERM (so it drains)
    and then the rest."""
    ports: set[int] = set()
    while len(ports) < 5:
        ports.add(free_port())
    sandbox, shop, bare, bare_asyncio, serve = ports
    config = write_files(folder, serve, sandbox, shop, trades, settings, store_url)
    trades_file = ("--trades", str(folder / "trades.json")) if trades else ()
    me = (sys.executable, __file__)
    commands = {
        "sandbox": (*CLI, "sandbox", "--port", str(sandbox), "--partner", PARTNER, "--md5-key", MD5_KEY, *trades_file),
        "shop": (*me, "--shop-server", str(shop)),
        "bare": (*me, "--bare-server", str(bare)),
        "bare-asyncio": (*me, "--bare-server", str(bare_asyncio), "--asyncio"),
        "serve": (*CLI, "serve", "--config", str(config), "--log-level", "warning"),
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in
            zip(("sandbox", "shop", "bare", "bare-asyncio", "serve"), (sandbox, shop, bare, bare_asyncio, serve),
                strict=True)}
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, command in commands.items():
            with (folder / f"{name}.log").open("wb") as log:
                processes[name] = await asyncio.create_subprocess_exec(
                    *command, stdout=log, stderr=asyncio.subprocess.STDOUT
                )
        yield Servers(urls, processes)
    finally:
        # serve first: it talks to the others
        await stop_processes(processes, ("serve", *(n for n in commands if n != "serve")))


async def stop_processes(processes: dict[str, asyncio.subprocess.Process], order: Sequence[str]) -> None:
    """SIGTERM each running process in `order`, killing one that has not stopped within STOP_WITHIN_S."""
    for name in order:
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


@contextlib.asynccontextmanager
async def postgres_database(prefix: str = "bench_ingest") -> AsyncIterator[str]:
    """A fresh database on the test server ($REFUND_ADAPTER_TEST_PG), dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def stored_ids(store_url: str) -> list[str]:
    """Every stored refund id of the bench's shop (a list: a duplicate would show as a repeat)."""
    query = "SELECT platform_refund_id FROM refunds WHERE platform = 'generic' AND shop = $1"
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return [row[0] for row in db.execute(query.replace("$1", "?"), (SHOP,))]
    conn = await asyncpg.connect(store_url)
    try:
        return [row[0] for row in await conn.fetch(query, SHOP)]
    finally:
        await conn.close()


def durability(rounds: list[Round], stored: list[str]) -> dict[str, Any]:
    """Every acknowledged webhook stored, none twice. The Python driver knows each acknowledged id; wrk knows how
    many were acknowledged among the first `sent` ids of a round, so each round's stored ids must number at least
    that many and lie within those sent."""
    ids = {int(refund_id.removeprefix("bench-")) for refund_id in stored}
    acknowledged = sum(r.acknowledged_count for r in rounds)
    short = 0
    for r in rounds:
        if r.acknowledged:
            short += len(set(r.acknowledged) - set(stored))
        else:
            mine = sum(1 for i in range(r.first_index, r.first_index + r.sent) if i in ids)
            short += max(0, r.acknowledged_count - mine)
    sent = [i for r in rounds for i in range(r.first_index, r.first_index + r.sent)]
    return {"acknowledged": acknowledged, "stored": len(stored), "duplicates": len(stored) - len(ids),
            "acknowledged_missing": short, "stored_never_sent": len(ids - set(sent))}


def print_logs(folder: Path) -> None:
    """The end of each server's log, on stderr (when the run fails)."""
    for log in sorted(folder.glob("*.log")):
        print(f"--- {log.name} (last lines)\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)


def median_or_none(values: list[float | None], digits: int = 1) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), digits) if known else None


def summarise(rounds: list[Round], checks: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Medians per target, serve's ratios to each bare server and the checks, as one JSON-ready object."""
    summary: dict[str, Any] = {}
    for target in TARGETS:
        mine = [r for r in rounds if r.target == target]
        summary[target] = {
            "requests_per_s": round(statistics.median(r.requests_per_s for r in mine), 1),
            "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
            "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
            "errors": sum(r.errors for r in mine),
            "rounds": [{k: v for k, v in asdict(r).items() if k != "acknowledged"} for r in mine],
            "server_cpu_us_per_request": median_or_none([r.server_cpu_us for r in mine]),
            "server_busy": median_or_none([r.server_busy for r in mine], 2),
            "server_cpu_us_with_drain": median_or_none([r.server_cpu_us_with_drain for r in mine]),
            "intake_cpu_us_per_request": median_or_none([r.intake_cpu_us for r in mine]),
            "generator_cpu_us_per_request": round(statistics.median(r.generator_cpu_us for r in mine), 1),
            "generator_busy": round(statistics.median(r.generator_busy for r in mine), 2),
        }
    serve = [r for r in rounds if r.target == "serve"]
    summary["serve"]["drain_s"] = round(statistics.median(r.drain_s for r in serve), 2)
    for bare in BARES:
        paired = zip([r for r in rounds if r.target == bare], serve, strict=True)
        ratios = [(s.requests_per_s / b.requests_per_s, s.p99_ms / b.p99_ms) for b, s in paired]
        summary[f"ratio_{bare}"] = {
            "requests_per_s": round(statistics.median(r for r, _ in ratios), 3),
            "p99": round(statistics.median(p for _, p in ratios), 2),
            "rounds": [[round(r, 3), round(p, 2)] for r, p in ratios],
        }
    summary["serve"]["peers_cpu_us_per_request"] = median_or_none([r.peers_cpu_us for r in serve])
    summary["ceiling"] = ceiling(summary)
    summary["load_average"] = [round(r.load_average, 2) for r in rounds]
    summary["checks"] = checks
    summary["settings"] = {**settings, "cpus": os.cpu_count()}
    return summary


GOAL_OF_BARE = 0.75  # issue #15: serve at 0.75 of the bare handler's requests/s, the engine keeping up


def ceiling(summary: dict[str, Any]) -> dict[str, Any] | None:
    """What this machine allows, from the same run. With the engine keeping up, every refund's work fits on the
    machine's cores: serve's (web and engine processes, drain included), the sandbox's and the shop's (`peers`),
    and wrk's. So serve reaches at most cores / (all of it) refunds a second, and the goal leaves serve
    cores / (GOAL_OF_BARE x bare's requests/s) minus the peers' and wrk's share: its `budget`, to set beside the
    bare handler's CPU per request, which only reads a body and answers 200."""
    bare, serve = summary["bare"], summary["serve"]
    others = [serve["peers_cpu_us_per_request"], serve["generator_cpu_us_per_request"]]
    if any(part is None for part in others) or serve["server_cpu_us_with_drain"] is None:
        return None
    cores, others_us = os.cpu_count() or 1, sum(others)
    all_us = others_us + serve["server_cpu_us_with_drain"]
    return {"cores": cores, "others_cpu_us_per_refund": round(others_us, 1),
            "all_cpu_us_per_refund": round(all_us, 1), "max_requests_per_s": round(cores * 1e6 / all_us),
            "max_of_bare": round(cores * 1e6 / all_us / bare["requests_per_s"], 3),
            "goal_budget_cpu_us_per_refund": round(cores * 1e6 / (GOAL_OF_BARE * bare["requests_per_s"])
                                                   - others_us, 1),
            "bare_cpu_us_per_request": bare["server_cpu_us_per_request"]}


@dataclass
class Plan:
    """What to run."""

    driver: str
    rounds: int
    duration_s: float
    connections: int
    threads: int
    requests: int
    warmup: int
    warmup_s: float
    store: str
    settings: list[str]  # serve's config: section.key=value
    profile: Path | None = None  # py-spy's profiles of serve's measured rounds go here


async def run(plan: Plan) -> dict[str, Any]:
    """Warm up every target, then `plan.rounds` rounds of bare, bare-asyncio, serve; stop serve and check."""
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            folder = Path(tmp)
            store_url = (await stack.enter_async_context(postgres_database()) if plan.store == "postgres"
                         else f"sqlite:///{folder / 'refunds.db'}")
            try:
                rounds, warm, final, shop = await _rounds(plan, folder, store_url)
            except Exception:
                print_logs(folder)
                raise
            stored = await stored_ids(store_url)
    checks = durability([r for r in [*warm, *rounds] if r.target == "serve"], stored)
    checks.update(succeeded=final["refunds"].get("succeeded", 0), delivered=final["reports"].get("delivered", 0),
                  review=final["review"]["flagged"], shop_distinct=shop["distinct"], shop_deliveries=shop["deliveries"])
    checks["ok"] = (not checks["acknowledged_missing"] and not checks["duplicates"]
                    and not checks["stored_never_sent"]
                    and checks["succeeded"] == checks["delivered"] == checks["shop_distinct"] == len(stored)
                    and not checks["review"])
    return summarise(rounds, checks, {**asdict(plan), "profile": plan.profile and str(plan.profile)})


async def _rounds(plan: Plan, folder: Path, store_url: str
                  ) -> tuple[list[Round], list[Round], dict[str, Any], dict[str, int]]:
    """The measured rounds, serve's warm-up rounds, serve's final counts and the shop's, with every server
    stopped when it returns."""
    rounds: list[Round] = []
    async with (servers(folder, 0, plan.settings, store_url) as running,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=plan.connections)) as session):
        for name in ("sandbox", "shop", *TARGETS):
            path = {"serve": "/healthz", "sandbox": "/sandbox/faults", "shop": "/count"}.get(name, "/")
            await wait_ready(session, running.urls[name] + path, running.processes[name])
        runner = Runner(plan, running, session, folder)
        for target in TARGETS:
            await runner.round(target, measured=False)
        for _ in range(plan.rounds):
            for target in TARGETS:
                rounds.append(await runner.round(target, measured=True))
        final = await stats(session, running.urls["serve"])
        async with session.get(running.urls["shop"] + "/count") as resp:
            shop = await resp.json()
    return rounds, runner.warm_rounds, final, shop


class Runner:
    """Runs one round at a time against the running servers; serve's rounds each take fresh refund ids."""

    def __init__(self, plan: Plan, running: Servers, session: aiohttp.ClientSession, folder: Path) -> None:
        self.plan, self.running, self.session, self.folder = plan, running, session, folder
        self.profiled = 0
        self.next_index = 0
        self.best_bare = 0.0
        self.warm_rounds: list[Round] = []
        self.bare_records: Path | None = None

    def _take(self, count: int) -> range:
        indices = range(self.next_index, self.next_index + count)
        self.next_index += count
        return indices

    async def _profile(self, pid: int, seconds: float) -> list[asyncio.subprocess.Process]:
        """With `--profile DIR`: py-spy sampling serve's processes (the web process, then its engine process) for
        the round, as collapsed stacks in DIR/serve-<round>-<n>.txt (`bench/stacks.py` gives the top entries)."""
        if self.plan.profile is None:
            return []
        self.profiled += 1
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.plan.profile.mkdir(parents=True, exist_ok=True)
        return [await asyncio.create_subprocess_exec(
                    spy, "record", "--pid", str(member), "--rate", "100", "--nonblocking", "--format", "raw",
                    "--duration", str(int(seconds)), "--output",
                    str(self.plan.profile / f"serve-{self.profiled}-{n}.txt"),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                for n, member in enumerate(_descendants(pid))]

    def _peers(self) -> list[int]:
        """The sandbox and the shop: the work of serve's loop that serve does not do itself."""
        return [self.running.processes[name].pid for name in ("sandbox", "shop")]

    async def round(self, target: str, measured: bool) -> Round:
        plan, url, pid = self.plan, self.running.urls[target], self.running.processes[target].pid
        await settle(self.session, self.running.urls["serve"])
        if plan.driver == "python":
            count = plan.requests if measured else plan.warmup
            indices = self._take(count) if target == "serve" else range(count)
            if target == "serve":
                await seed_trades(self.session, self.running.urls["sandbox"], indices)
            peers_before = measure_cpu(self._peers())  # the trades seeded: from here on, the refunds' work
            result = await measured_drive(self.session, target, prepare(url, indices), plan.connections, pid)
        else:
            duration = plan.duration_s if measured else plan.warmup_s
            if target == "serve":
                rate = self.best_bare or 15_000.0
                indices = self._take(int(rate * duration * RECORDS_HEADROOM) + 1000)
                await seed_trades(self.session, self.running.urls["sandbox"], indices)
                records = self.folder / "serve-records"
                wrk_driver.write_records(records, plan.threads, raw_webhooks(url, indices))
            else:
                records = self.folder / "bare-records"
                if self.bare_records is None:
                    wrk_driver.write_records(records, plan.threads, raw_webhooks(url, range(20_000)))
                    self.bare_records = records
                indices = range(0)
            samplers = await self._profile(pid, duration) if target == "serve" and measured else []
            peers_before = measure_cpu(self._peers())
            result = await wrk_round(target, url + "/", records, duration, plan.connections, plan.threads,
                                     self.folder, pid)
            for sampler in samplers:
                await sampler.wait()
            if target in BARES:
                self.best_bare = max(self.best_bare, result.requests_per_s)
        if target == "serve":
            result.first_index = indices.start
            await drained(self.session, self.running.urls["serve"], result, pid)
            peers_after = measure_cpu(self._peers())
            if peers_before is not None and peers_after is not None:
                result.peers_cpu_us = (peers_after - peers_before) / max(result.acknowledged_count, 1) * 1e6
            if result.wraps:
                print(f"warning: serve's records ran out ({result.wraps} times): repeats were sent", file=sys.stderr)
            if not measured:
                self.warm_rounds.append(result)
        return result


def print_summary(summary: dict[str, Any]) -> None:
    for target in TARGETS:
        row = summary[target]
        print(f"{target:>12}: {row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f}"
              f" ms  errors {row['errors']}  rounds {[round(r['requests_per_s']) for r in row['rounds']]}")
    for bare in BARES:
        ratio = summary[f"ratio_{bare}"]
        print(f"serve/{bare}: requests/s {ratio['requests_per_s']}, p99 {ratio['p99']}x (rounds {ratio['rounds']})")
    print(f"serve: every refund of a round final and reported {summary['serve']['drain_s']} s after the round "
          f"(median); CPU {summary['serve']['server_cpu_us_with_drain']} µs per request, drain included, of which "
          f"the web process {summary['serve']['intake_cpu_us_per_request']} µs during the round")
    for target in TARGETS:
        row = summary[target]
        if row["server_cpu_us_per_request"] is not None:
            print(f"{target:>12}: server CPU {row['server_cpu_us_per_request']:6.1f} µs/request (busy "
                  f"{row['server_busy']:.2f} core); load generator {row['generator_cpu_us_per_request']:6.1f} "
                  f"µs/request (busy {row['generator_busy']:.2f} core)")
    if (top := summary["ceiling"]) is not None:
        print(f"ceiling: serve {summary['serve']['server_cpu_us_with_drain']} µs, sandbox and shop and wrk "
              f"{top['others_cpu_us_per_refund']} µs of CPU per refund: at most {top['max_requests_per_s']} refunds/s "
              f"on {top['cores']} cores with the engine keeping up, {top['max_of_bare']} of bare. {GOAL_OF_BARE} of "
              f"bare would leave serve {top['goal_budget_cpu_us_per_refund']} µs per refund for all of its work; the "
              f"bare handler spends {top['bare_cpu_us_per_request']} µs per request answering 200")
    print(f"load average at each round's start: {summary['load_average']}")
    print(f"checks: {summary['checks']}")


def main() -> None:
    """Parse the flags; run a helper server (internal) or the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", choices=("wrk", "python"), default="wrk")
    parser.add_argument("--duration", type=float, default=30.0, help="wrk: seconds per round (default 30)")
    parser.add_argument("--warmup-seconds", type=float, default=5.0, help="wrk: unmeasured seconds per target first")
    parser.add_argument("--connections", "--concurrency", type=int, default=64,
                        help="connections, one request in flight on each (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk's threads (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per target (default 2)")
    parser.add_argument("--requests", type=int, default=5000, help="python: requests per target per round")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"python: unmeasured requests first ({WARMUP})")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                        help=f"serve's store; postgres: a fresh database on {PG_ADMIN} (REFUND_ADAPTER_TEST_PG)")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="put this into serve's config (repeatable), e.g. engine.own_process=false")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample serve's processes with py-spy during its measured rounds (collapsed stacks)")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--asyncio", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shop-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server, uvloop=not args.asyncio)
        return
    if args.shop_server:
        shop_server(args.shop_server)
        return
    if args.driver == "wrk" and not wrk_driver.available():
        parser.error("wrk is not installed (apt-get install wrk), or use --driver python")
    plan = Plan(args.driver, args.rounds, args.duration, args.connections, args.threads, args.requests, args.warmup,
                args.warmup_seconds, args.store, args.set, args.profile)
    summary = asyncio.run(run(plan))
    print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    failed = sum(summary[target]["errors"] for target in TARGETS)
    if not summary["checks"]["ok"] or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
