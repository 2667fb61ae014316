"""The engine in a process of its own, seen from the web process (`serve`; `engine.own_process`).

Intake and the engine then each have an event loop and a core: the engine catching up on a backlog (batching a
thousand refunds, reporting them) never holds the loop that answers webhooks. Both processes work on the same store
(SQLite orders their transactions with its own lock: store/sqlite.py; PostgreSQL serves several instances anyway).
What used to pass between them in memory passes over a socket pair, as JSON lines:

- web to engine, `{"wake": [loop names]}`: the `Signals` of the web process's context are `RemoteEvent`s, so a
  stored webhook wakes the batcher and a recorded notify the reporter as before; a burst of webhooks sends a line
  every WAKE_INTERVAL_SECONDS, not one per webhook. A lost wake costs at most a loop's tick: every loop also polls.
- engine to web, every REPORT_SECONDS: its loops' health (for /readyz) and its counters (for /metrics).

The engine process (engine/process.py) is killed by the kernel when the web process dies, and waits for the engine
lock of a predecessor, so a restarted `serve` never runs two engines on one SQLite file. SIGTERM to `serve` stops the
web process, which then stops the engine (SIGTERM, then SIGKILL after STOP_SECONDS); an engine process that exits
on its own is started again after RESTART_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from prometheus_client.metrics_core import Metric

from ..metrics import from_snapshot
from .health import LoopHealth
from .runtime import Signals

log = logging.getLogger(__name__)
REPORT_SECONDS = 1.0
SILENT_AFTER_SECONDS = 10.0  # no report for this long: the engine process is stuck
STOP_SECONDS = 15.0
RESTART_SECONDS = 1.0
# Wakes are sent at most this often: a burst of webhooks wakes the batcher 50 times a second, not once per
# webhook (each wake costs the engine a look at its pending work; a loop woken late by this misses nothing).
WAKE_INTERVAL_SECONDS = 0.02


class RemoteEvent(asyncio.Event):
    """A loop's wake-up signal whose loop runs in the engine process: `set()` sends its name there."""

    def __init__(self, process: EngineProcess, name: str) -> None:
        super().__init__()
        self._process = process
        self._name = name

    def set(self) -> None:
        self._process.wake(self._name)


class RemoteLoopHealth(LoopHealth):
    """The engine loops' health as the engine process last reported it."""

    def __init__(self, process: EngineProcess) -> None:
        super().__init__()
        self._process = process

    def problems(self, cycle_bound: float) -> list[str]:
        return self._process.problems()


class EngineProcess:
    """The engine's process, started and stopped by the web process's application (web/app.py)."""

    def __init__(self, config_path: str, log_level: str) -> None:
        self.config_path = config_path
        self.log_level = log_level
        self._child: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: set[str] = set()
        self._flush_at: asyncio.TimerHandle | None = None
        self._flushed_at = 0.0  # the event loop's clock
        self._report: dict[str, Any] | None = None
        self._report_at = 0.0
        self._started_at = 0.0
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._reported = asyncio.Event()  # the running process has reported at least once

    def context_fields(self) -> dict[str, Any]:
        """The fields of the web process's EngineContext that reach this process instead of local loops."""
        return {
            "signals": Signals(**{f.name: RemoteEvent(self, f.name) for f in fields(Signals)}),
            "loops": RemoteLoopHealth(self),
            "engine_metrics": self.metrics,
        }

    async def start(self) -> None:
        """Start the engine process and return once its loops run (its first report), so that a `serve` that
        answers is one whose engine works; it is watched (and started again if it exits) until `stop`.
        RuntimeError if it exits first."""
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name="refund-adapter-engine-process")
        reported = asyncio.create_task(self._reported.wait())
        await asyncio.wait([reported, self._watcher], return_when=asyncio.FIRST_COMPLETED)
        if not reported.done():
            reported.cancel()
            raise RuntimeError(f"the engine process exited as it started (status {self._child.returncode})")

    async def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        try:
            self._child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "refund_adapter.engine.process", "--config", self.config_path,
                "--log-level", self.log_level, "--fd", str(theirs.fileno()), "--parent", str(os.getpid()),
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        self._started_at = time.monotonic()
        self._report = None
        self._reported.clear()
        if self._writer is not None:  # the socket of the process that died
            self._writer.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=mine)
        if self._pending:  # wakes sent while there was no process: the new one gets them
            self._flush()

    async def _watch(self) -> None:
        """Read the engine's reports; when its socket closes, it has exited: start it again unless stopping."""
        while True:
            with contextlib.suppress(ConnectionError):
                while line := await self._reader.readline():
                    self._report = json.loads(line)
                    self._report_at = time.monotonic()
                    self._reported.set()
            child = self._child
            assert child is not None
            await child.wait()  # the socket closes as the process exits
            if self._stopping or not self._reported.is_set():  # stopped, or it could not start: start() says so
                return
            log.error("the engine process exited with status %s; starting it again in %.0fs", child.returncode,
                      RESTART_SECONDS)
            await asyncio.sleep(RESTART_SECONDS)
            await self._spawn()

    def wake(self, name: str) -> None:
        """Wake the engine loop `name` at the next flush: at once, or WAKE_INTERVAL_SECONDS after the last one."""
        self._pending.add(name)
        if self._flush_at is None:
            loop = asyncio.get_running_loop()
            self._flush_at = loop.call_at(max(loop.time(), self._flushed_at + WAKE_INTERVAL_SECONDS), self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        if self._writer is None or self._writer.is_closing() or not self._pending:
            return  # no process to tell (yet): the next one is told when it starts (_spawn)
        self._flushed_at = asyncio.get_running_loop().time()
        self._writer.write(json.dumps({"wake": sorted(self._pending)}).encode() + b"\n")
        self._pending.clear()

    def problems(self) -> list[str]:
        """Why the engine is not healthy, as /readyz says it; empty when it is."""
        child = self._child
        if child is None or child.returncode is not None:
            return [f"the engine process is not running (exit status {None if child is None else child.returncode})"]
        if self._report is None:
            return [f"the engine process is starting ({time.monotonic() - self._started_at:.0f}s)"]
        silent = time.monotonic() - self._report_at
        if silent > SILENT_AFTER_SECONDS:
            return [f"the engine process has not reported for {silent:.0f}s"]
        return list(self._report["problems"])

    def metrics(self) -> Iterable[Metric]:
        """The engine's counters as it last reported them."""
        return from_snapshot(self._report["metrics"]) if self._report else ()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_SECONDS; returns once the process is gone."""
        self._stopping = True
        child = self._child
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.wait(), STOP_SECONDS)
            except TimeoutError:
                log.warning("the engine process did not stop within %.0fs of SIGTERM; killed", STOP_SECONDS)
                child.kill()
                await child.wait()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
