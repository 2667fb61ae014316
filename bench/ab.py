"""Two builds of `refund-adapter serve` side by side: the working tree against a git revision.

On a shared machine one run of `ingest.py` varies by ±10-15%, more than most single changes are worth. This
script compares two builds in one run, so that machine noise hits both: it starts the Alipay sandbox, the bare
callback server and two `serve` processes (A: the revision, from a temporary `git worktree`; B: this checkout),
each with its own SQLite file, and drives signed `generic` webhooks at them in alternating rounds (A, B, then
B, A, ...), waiting before each round until both have drained their engines. It prints, per build, the median
requests/s, p99 and CPU per request of its processes (the engine's own included), then the paired B/A ratios.

`--driver wrk` posts for `--duration` seconds per round with wrk (as bench/ingest.py does) instead of a fixed
number of requests from this process, and also gives the time each build took to drain after its round.

    python bench/ab.py HEAD~1 [--rounds 8] [--requests 10000] [--concurrency 64] [--log-level warning] [--json]
    python bench/ab.py HEAD~1 --driver wrk --duration 20 --rounds 3

Exit status 0 when every request of both builds was acknowledged and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # the sibling benchmark's helpers
import wrk_driver

from refund_adapter.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
BUILDS = ("A", "B")


@contextlib.contextmanager
def revision_on_path(revision: str, folder: Path) -> Iterator[str]:
    """A PYTHONPATH that imports refund_adapter and the built-in plugins from `revision` (a git worktree)."""
    tree, path = folder / "tree", folder / "path"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), revision],
                   check=True)
    try:
        path.mkdir()
        (path / "refund_adapter").symlink_to(tree / "refund_adapter")
        for plugin in (tree / "plugins").iterdir():  # installed as refund_adapter_<name> (pyproject.toml)
            if (plugin / "__init__.py").exists():
                (path / f"refund_adapter_{plugin.name}").symlink_to(plugin)
        yield str(path)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


async def run(
    revision: str, requests: int, rounds: int, concurrency: int, log_level: str = "warning",
    driver: str = "python", duration: float = 20.0,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp, revision_on_path(revision, Path(tmp)) as base:
        folder = Path(tmp)
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        bare_port, sandbox_port, *serve_ports = ports
        trades = 2 * (500 + rounds * requests) if driver == "python" else 0  # wrk: seeded per round
        env = {"A": {**os.environ, "PYTHONPATH": base}, "B": {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}}
        processes: dict[str, asyncio.subprocess.Process] = {}
        urls: dict[str, str] = {}
        try:
            for build, port in zip(BUILDS, serve_ports, strict=True):
                (folder / build).mkdir()
                config = ingest.write_files(folder / build, port, sandbox_port, bare_port, trades)
                urls[build] = f"http://127.0.0.1:{port}"
                with (folder / build / "serve.log").open("wb") as log:
                    processes[build] = await asyncio.create_subprocess_exec(
                        *ingest.CLI, "serve", "--config", str(config), "--log-level", log_level,
                        cwd=tmp, env=env[build], stdout=log, stderr=asyncio.subprocess.STDOUT)
            with (folder / "sandbox.log").open("wb") as log:
                processes["sandbox"] = await asyncio.create_subprocess_exec(
                    *ingest.CLI, "sandbox", "--port", str(sandbox_port), "--partner", ingest.PARTNER,
                    "--md5-key", ingest.MD5_KEY,
                    *(("--trades", str(folder / "A" / "trades.json")) if trades else ()),
                    cwd=tmp, stdout=log, stderr=asyncio.subprocess.STDOUT)
                processes["bare"] = await asyncio.create_subprocess_exec(
                    sys.executable, str(Path(ingest.__file__)), "--bare-server", str(bare_port),
                    cwd=tmp, stdout=log, stderr=asyncio.subprocess.STDOUT)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
                for build in BUILDS:
                    await ingest.wait_ready(session, urls[build] + "/healthz", processes[build])
                warmup = 500 if driver == "python" else 3.0
                schedule = [(build, warmup, False) for build in BUILDS]
                for n in range(rounds):  # A, B, then B, A: neither build always goes first
                    size = requests if driver == "python" else duration
                    schedule += [(build, size, True) for build in (BUILDS[n % 2], BUILDS[1 - n % 2])]
                measured: dict[str, list[ingest.Round]] = {build: [] for build in BUILDS}
                served: dict[str, list[ingest.Round]] = {build: [] for build in BUILDS}
                next_index, best = 0, 0.0
                for build, size, is_measured in schedule:
                    for other in BUILDS:
                        await ingest.settle(session, urls[other])
                    if driver == "python":
                        work = ingest.prepare(urls[build], range(next_index, next_index + int(size)))
                        result = await ingest.measured_drive(session, build, work, concurrency, processes[build].pid)
                        result.first_index, next_index = next_index, next_index + int(size)
                    else:
                        indices = range(next_index, next_index + int((best or 15_000) * size * 1.25) + 1000)
                        next_index = indices.stop
                        await ingest.seed_trades(session, f"http://127.0.0.1:{sandbox_port}", indices)
                        records = folder / "records"
                        wrk_driver.write_records(records, 1, ingest.raw_webhooks(urls[build], indices))
                        result = await ingest.wrk_round(build, urls[build] + "/", records, size, concurrency, 1,
                                                        folder, processes[build].pid)
                        result.first_index = indices.start
                        best = max(best, result.requests_per_s)
                    await ingest.drained(session, urls[build], result, processes[build].pid)
                    served[build].append(result)
                    if is_measured:
                        measured[build].append(result)
        except Exception:
            ingest.print_logs(folder)
            raise
        finally:
            for process in processes.values():
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            for process in processes.values():
                await process.wait()
        stored = {build: await ingest.stored_ids(f"sqlite:///{folder / build / 'refunds.db'}") for build in BUILDS}
    checks = {build: ingest.durability(served[build], stored[build]) for build in BUILDS}
    return summarise(revision, measured, checks)


def summarise(revision: str, measured: dict[str, list[ingest.Round]], checks: dict[str, dict[str, Any]]
              ) -> dict[str, Any]:
    summary: dict[str, Any] = {"A": {"revision": revision}, "B": {"revision": "working tree"}}
    for build in BUILDS:
        rounds = measured[build]
        summary[build].update({
            "requests_per_s": round(statistics.median(r.requests_per_s for r in rounds), 1),
            "p99_ms": round(statistics.median(r.p99_ms for r in rounds), 2),
            "drain_s": round(statistics.median(r.drain_s for r in rounds), 2),
            "server_cpu_us_per_request": ingest.median_or_none([r.server_cpu_us for r in rounds]),
            "server_cpu_us_with_drain": ingest.median_or_none([r.server_cpu_us_with_drain for r in rounds]),
            "intake_cpu_us_per_request": ingest.median_or_none([r.intake_cpu_us for r in rounds]),
            "errors": sum(r.errors for r in rounds),
            "load_average": [round(r.load_average, 2) for r in rounds],
            "checks": checks[build],
        })
    pairs = list(zip(measured["A"], measured["B"], strict=True))
    summary["b_over_a_requests_per_s"] = [round(b.requests_per_s / a.requests_per_s, 3) for a, b in pairs]
    summary["b_over_a_p99"] = [round(b.p99_ms / a.p99_ms, 3) for a, b in pairs]
    if all(a.server_cpu_us_with_drain and b.server_cpu_us_with_drain for a, b in pairs):
        summary["b_over_a_cpu_per_request"] = [
            round(b.server_cpu_us_with_drain / a.server_cpu_us_with_drain, 3) for a, b in pairs]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the git revision to compare the working tree with (A)")
    parser.add_argument("--requests", type=int, default=10000, help="requests per build per round (default 10000)")
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds per build (default 8)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--log-level", default="warning",
                        help="both serves' --log-level (default warning; info writes a line per stored webhook)")
    parser.add_argument("--driver", choices=("python", "wrk"), default="python",
                        help="python: --requests per round from this process; wrk: --duration seconds of wrk")
    parser.add_argument("--duration", type=float, default=20.0, help="wrk: seconds per round (default 20)")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    args = parser.parse_args()
    summary = asyncio.run(run(args.revision, args.requests, args.rounds, args.concurrency, args.log_level,
                              args.driver, args.duration))
    for build in BUILDS:
        row = summary[build]
        print(f"{build} ({row['revision']}): {row['requests_per_s']:8.1f} req/s, p99 {row['p99_ms']} ms, serve CPU "
              f"{row['server_cpu_us_per_request']} µs/request ({row['server_cpu_us_with_drain']} with the drain; web "
              f"process {row['intake_cpu_us_per_request']}), "
              f"drained in {row['drain_s']} s (medians); load {row['load_average']}; {row['checks']}")
    for key in ("b_over_a_requests_per_s", "b_over_a_p99", "b_over_a_cpu_per_request"):
        if key in summary:
            print(f"{key}: median {statistics.median(summary[key]):.3f}, pairs {summary[key]}")
    if args.json:
        print(json.dumps(summary))
    if any(summary[b]["errors"] or summary[b]["checks"]["acknowledged_missing"] or summary[b]["checks"]["duplicates"]
           for b in BUILDS):
        sys.exit(1)


if __name__ == "__main__":
    main()
