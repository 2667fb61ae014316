"""Webhook ingest throughput: `refund-adapter serve` (SQLite) against a bare aiohttp handler, in one run.

Both servers run as their own processes on loopback; this process is the load generator. Each request to
`serve` is a signed `generic` refund webhook with a unique refund id, signed before the clock starts. The
targets alternate round by round so that machine noise hits both; the figures are the medians. Afterwards
`serve` is stopped and the SQLite file is read: every acknowledged refund must be on disk.

    python bench/ingest.py [--requests 5000] [--concurrency 64] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from refund_adapter.testing import free_port, signed_generic_webhook

MD5_KEY = "benchkey0123456789abcdefghijklmn"
SECRET = "whsec_" + base64.b64encode(b"ingest-benchmark-secret!").decode()
SHOP = "bench"
PARTNER = "2088101122136241"


def bare_server(port: int) -> None:
    """The baseline: read the body, answer 200. Nothing else."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass
class Round:
    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Prepared:
    url: str
    headers: dict[str, str]
    body: bytes
    refund_id: str


def prepare(base_url: str, first: int, count: int) -> list[Prepared]:
    out = []
    for i in range(first, first + count):
        payload = {"refund_id": f"b{i}", "order_id": f"o{i}", "trade_no": f"2026112599{i:08d}", "amount": "1.00",
                   "currency": "CNY", "reason": "bench"}
        headers, body = signed_generic_webhook(SECRET, payload, f"msg-b{i}")
        out.append(Prepared(f"{base_url}/webhooks/generic/{SHOP}", headers, body, payload["refund_id"]))
    return out


async def drive(session: aiohttp.ClientSession, work: list[Prepared], concurrency: int) -> tuple[float, list[float],
                                                                                               list[str], int]:
    """Send every request with `concurrency` in flight; (elapsed s, latencies s, acknowledged ids, errors)."""
    queue = iter(work)
    latencies: list[float] = []
    acknowledged: list[str] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for item in queue:
            started = time.perf_counter()
            try:
                async with session.post(item.url, data=item.body, headers=item.headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - started)
            if ok:
                acknowledged.append(item.refund_id)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, acknowledged, errors


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {process.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def write_config(folder: Path, port: int, sandbox_port: int, callback_url: str) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
        "store": {"url": f"sqlite:///{folder / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "md5_key": MD5_KEY,
                                          "gateway_url": f"http://127.0.0.1:{sandbox_port}/gateway.do"}}},
        "platforms": {"generic": {"shops": [{"id": SHOP, "secret": SECRET, "callback_url": callback_url,
                                              "alipay_account": "main"}]}},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)


async def run(requests: int, concurrency: int, rounds: int, warmup: int) -> dict[str, object]:
    cli = (sys.executable, "-c", "from refund_adapter.cli import main; main()")
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        folder = Path(tmp)
        bare_port, serve_port, sandbox_port = free_port(), free_port(), free_port()
        bare = await spawn(sys.executable, __file__, "--bare-server", str(bare_port))
        sandbox = await spawn(*cli, "sandbox", "--port", str(sandbox_port), "--md5-key", MD5_KEY,
                              "--partner", PARTNER, "--time-scale", "1000")
        serve = await spawn(*cli, "serve", "--config",
                            str(write_config(folder, serve_port, sandbox_port, f"http://127.0.0.1:{bare_port}/cb")),
                            "--log-level", "error")
        try:
            bare_url, serve_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{serve_port}"
            await wait_healthy(bare_url + "/", bare)
            await wait_healthy(serve_url + "/healthz", serve)
            connector = aiohttp.TCPConnector(limit=concurrency)
            acknowledged: list[str] = []
            results: list[Round] = []
            next_id = 0
            async with aiohttp.ClientSession(connector=connector) as session:
                for target, url in (("bare", bare_url), ("serve", serve_url)):  # warm-up, not measured
                    work = prepare(url, next_id, warmup)
                    next_id += warmup
                    acknowledged += (await drive(session, work, concurrency))[2] if target == "serve" else []
                for _ in range(rounds):
                    for target, url in (("bare", bare_url), ("serve", serve_url)):
                        work = prepare(url, next_id, requests)
                        next_id += requests
                        elapsed, latencies, acked, errors = await drive(session, work, concurrency)
                        if target == "serve":
                            acknowledged += acked
                        results.append(Round(target, len(work) / elapsed, percentile(latencies, 0.5) * 1000,
                                             percentile(latencies, 0.99) * 1000, errors))
        finally:
            serve.send_signal(signal.SIGTERM)
            await asyncio.wait_for(serve.wait(), 30)
            for process in (bare, sandbox):
                process.terminate()
                await process.wait()
        with sqlite3.connect(f"file:{folder / 'refunds.db'}?mode=ro", uri=True) as db:
            stored = {row[0] for row in db.execute("SELECT platform_refund_id FROM refunds")}
    summary: dict[str, object] = {}
    for target in ("bare", "serve"):
        mine = [r for r in results if r.target == target]
        summary[target] = {
            "requests_per_s": round(statistics.median(r.requests_per_s for r in mine), 1),
            "p50_ms": round(statistics.median(r.p50_ms for r in mine), 2),
            "p99_ms": round(statistics.median(r.p99_ms for r in mine), 2),
            "errors": sum(r.errors for r in mine),
            "rounds_requests_per_s": [round(r.requests_per_s, 1) for r in mine],
        }
    ratios = [s.requests_per_s / b.requests_per_s for b, s in zip(results[::2], results[1::2], strict=True)]
    summary["ratio_serve_to_bare"] = round(statistics.median(ratios), 3)
    summary["acknowledged"] = len(acknowledged)
    summary["acknowledged_on_disk"] = len(stored.intersection(acknowledged))
    summary["settings"] = {"requests": requests, "concurrency": concurrency, "rounds": rounds, "cpus": os.cpu_count()}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests per target per round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    summary = asyncio.run(run(args.requests, args.concurrency, args.rounds, args.warmup))
    if args.json:
        print(json.dumps(summary))
    else:
        for target in ("bare", "serve"):
            row = summary[target]
            assert isinstance(row, dict)
            print(f"{target:>6}: {row['requests_per_s']:>8} req/s  p50 {row['p50_ms']:>7} ms  p99 {row['p99_ms']:>7} ms"
                  f"  errors {row['errors']}  rounds {row['rounds_requests_per_s']}")
        print(f"ratio serve/bare (median of per-round ratios): {summary['ratio_serve_to_bare']}")
        print(f"acknowledged refunds on disk: {summary['acknowledged_on_disk']} / {summary['acknowledged']}")
    if summary["acknowledged_on_disk"] != summary["acknowledged"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
