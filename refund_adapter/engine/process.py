"""The engine's own process: `serve` starts it beside the web process (engine/remote.py says why and how they
talk). It runs every engine loop over the same store, woken by the web process's lines on the socket it inherits,
and reports its loops' health and its counters back every REPORT_SECONDS.

It dies with the web process: the kernel kills it when its parent goes (Linux), and it stops when the socket
closes (elsewhere, or if the parent closed it). SIGTERM or SIGINT stop it cleanly: loops cancelled between steps,
the store closed.

    python -m refund_adapter.engine.process --config C --log-level L --fd N --parent PID   (started by serve)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys

import aiohttp

from .. import failpoints
from ..config import Config, ConfigError, load_config
from ..event_loop import new_event_loop
from ..logs import configure_logging
from ..metrics import snapshot
from ..plugins import create_plugin_manager
from ..store import store_from_url
from . import start_engine, stop_engine
from .assembly import client_timeout, engine_context
from .remote import REPORT_SECONDS
from .runtime import EngineContext

PR_SET_PDEATHSIG = 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="refund_adapter.engine.process")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--fd", type=int, required=True, help="this end of the socket pair to the web process")
    parser.add_argument("--parent", type=int, required=True, help="the web process's pid")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    failpoints.die_with(args.parent)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(args.log_level, config.logging.format)
    with asyncio.Runner(loop_factory=lambda: new_event_loop(config.server.uvloop)) as runner:
        runner.run(run(config, socket.socket(fileno=args.fd)))


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        raise SystemExit(1)


async def run(config: Config, sock: socket.socket) -> None:
    """Run the engine until SIGTERM, SIGINT or the web process closing the socket."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    store = store_from_url(config.store.url, role="engine")
    await store.open()
    try:
        async with aiohttp.ClientSession(timeout=client_timeout(config)) as session:
            ctx = engine_context(config, store, session, create_plugin_manager(config.plugins_dir))
            tasks = start_engine(ctx)
            helpers = [asyncio.create_task(_listen(reader, ctx, stop)), asyncio.create_task(_report(writer, ctx))]
            try:
                await stop.wait()
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await stop_engine(tasks)
    finally:
        await store.close()
        writer.close()


async def _listen(reader: asyncio.StreamReader, ctx: EngineContext, stop: asyncio.Event) -> None:
    """Set the loops' signals the web process names; its closing the socket is a stop."""
    with contextlib.suppress(ConnectionError):
        while line := await reader.readline():
            for name in json.loads(line).get("wake", ()):
                getattr(ctx.signals, name).set()
    stop.set()


async def _report(writer: asyncio.StreamWriter, ctx: EngineContext) -> None:
    """The loops' health and the counters, every REPORT_SECONDS (the first at once)."""
    engine = ctx.config.engine
    while True:
        problems = ctx.loops.problems(engine.yield_max_seconds + engine.lease_seconds)
        writer.write(json.dumps({"problems": problems, "metrics": snapshot(ctx.metrics.registry)}).encode() + b"\n")
        await writer.drain()
        await asyncio.sleep(REPORT_SECONDS)


if __name__ == "__main__":
    main()
