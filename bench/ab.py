"""Two builds of `refund-adapter serve` side by side: the working tree against a git revision.

On a shared machine one run of `ingest.py` varies by ±10-15%, more than most single changes are worth. This
script compares two builds in one run, so that machine noise hits both: it starts the Alipay sandbox, the bare
callback server and two `serve` processes (A: the revision, from a temporary `git worktree`; B: this checkout),
each with its own SQLite file, and drives signed `generic` webhooks at them in alternating rounds (A, B, then
B, A, ...), waiting before each round until both have drained their engines. It prints, per build, the median
requests/s and the median CPU per request of its process, then the paired B/A ratios of each.

    python bench/ab.py HEAD~1 [--rounds 8] [--requests 10000] [--concurrency 64] [--log-level warning] [--json]

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
    revision: str, requests: int, rounds: int, concurrency: int, log_level: str = "warning"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp, revision_on_path(revision, Path(tmp)) as base:
        folder = Path(tmp)
        ports: set[int] = set()
        while len(ports) < 4:
            ports.add(free_port())
        bare_port, sandbox_port, *serve_ports = ports
        trades = 2 * (500 + rounds * requests)
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
                    "--md5-key", ingest.MD5_KEY, "--trades", str(folder / "A" / "trades.json"),
                    cwd=tmp, stdout=log, stderr=asyncio.subprocess.STDOUT)
                processes["bare"] = await asyncio.create_subprocess_exec(
                    sys.executable, str(Path(ingest.__file__)), "--bare-server", str(bare_port),
                    cwd=tmp, stdout=log, stderr=asyncio.subprocess.STDOUT)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
                for build in BUILDS:
                    await ingest.wait_ready(session, urls[build] + "/healthz", processes[build])
                schedule = [(build, 500, False) for build in BUILDS]
                for n in range(rounds):  # A, B, then B, A: neither build always goes first
                    schedule += [(build, requests, True) for build in (BUILDS[n % 2], BUILDS[1 - n % 2])]
                measured: dict[str, list[ingest.Round]] = {build: [] for build in BUILDS}
                acknowledged: dict[str, list[str]] = {build: [] for build in BUILDS}
                next_index = 0
                for build, count, is_measured in schedule:
                    work = ingest.prepare(urls[build], range(next_index, next_index + count))
                    next_index += count
                    for other in BUILDS:
                        await ingest.settle(session, urls[other])
                    result = await ingest.measured_drive(session, build, work, concurrency, processes[build].pid)
                    acknowledged[build] += result.acknowledged
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
        stored = {build: ingest.on_disk(folder / build / "refunds.db", acknowledged[build]) for build in BUILDS}
    return summarise(revision, measured, acknowledged, stored)


def summarise(revision: str, measured: dict[str, list[ingest.Round]], acknowledged: dict[str, list[str]],
              stored: dict[str, int]) -> dict[str, Any]:
    summary: dict[str, Any] = {"A": {"revision": revision}, "B": {"revision": "working tree"}}
    for build in BUILDS:
        rounds = measured[build]
        summary[build].update({
            "requests_per_s": round(statistics.median(r.requests_per_s for r in rounds), 1),
            "server_cpu_us_per_request": ingest.median_or_none([r.server_cpu_us for r in rounds]),
            "errors": sum(r.errors for r in rounds),
            "acknowledged": len(acknowledged[build]),
            "acknowledged_on_disk": stored[build],
        })
    pairs = list(zip(measured["A"], measured["B"], strict=True))
    summary["b_over_a_requests_per_s"] = [round(b.requests_per_s / a.requests_per_s, 3) for a, b in pairs]
    if all(a.server_cpu_us and b.server_cpu_us for a, b in pairs):
        summary["b_over_a_cpu_per_request"] = [round(b.server_cpu_us / a.server_cpu_us, 3) for a, b in pairs]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision", help="the git revision to compare the working tree with (A)")
    parser.add_argument("--requests", type=int, default=10000, help="requests per build per round (default 10000)")
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds per build (default 8)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--log-level", default="warning",
                        help="both serves' --log-level (default warning; info writes a line per stored webhook)")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON object")
    args = parser.parse_args()
    summary = asyncio.run(run(args.revision, args.requests, args.rounds, args.concurrency, args.log_level))
    for build in BUILDS:
        row = summary[build]
        print(f"{build} ({row['revision']}): {row['requests_per_s']:8.1f} req/s, serve CPU "
              f"{row['server_cpu_us_per_request']} µs/request (medians); on disk {row['acknowledged_on_disk']} / "
              f"{row['acknowledged']}")
    for key in ("b_over_a_requests_per_s", "b_over_a_cpu_per_request"):
        if key in summary:
            print(f"{key}: median {statistics.median(summary[key]):.3f}, pairs {summary[key]}")
    if args.json:
        print(json.dumps(summary))
    if any(summary[b]["errors"] or summary[b]["acknowledged_on_disk"] != summary[b]["acknowledged"] for b in BUILDS):
        sys.exit(1)


if __name__ == "__main__":
    main()
