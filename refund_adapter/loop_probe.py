"""Probes of the event loop's responsiveness, timed beside heavy work: how long the loop was held.

Everything the adapter does shares one event loop: a statement that runs in line for a second is a second in
which no webhook is answered. `LoopLag` runs in the loop it measures (a task that sleeps a few milliseconds and
records how late it wakes: the longest lateness is the longest stall); `HealthProbe` measures from outside, as
a platform would see it (GET /healthz, again and again, the slowest round trip). Used by the tests (which print
the figures, never assert them) and by `bench/stalls.py`.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import Self, TypeVar

import aiohttp

T = TypeVar("T")


class _Sampler:
    """A task that repeats `_sample` until the block ends; `longest` is the worst sample in seconds."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> float:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            self.longest = max(self.longest, await self._sample())
            self.samples += 1

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # started before the work it is timed beside
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # our caller is being cancelled too, not just the sampler


class LoopLag(_Sampler):
    """The loop's longest stall while the block runs: a task sleeping `interval` records how late it wakes.

    `longest_gc` is the longest garbage collection meanwhile (any thread's): a stall no code of ours causes."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__()
        self.interval = interval
        self.longest_gc = 0.0
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.longest_gc = max(self.longest_gc, time.perf_counter() - self._gc_started)

    async def __aenter__(self) -> Self:
        gc.callbacks.append(self._on_gc)
        return await super().__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(kind, exc, tb)
        finally:
            gc.callbacks.remove(self._on_gc)

    async def _sample(self) -> float:
        start = time.perf_counter()
        await asyncio.sleep(self.interval)
        return max(0.0, time.perf_counter() - start - self.interval)


class HealthProbe(_Sampler):
    """The slowest GET of `url` (a tiny endpoint such as /healthz) sent one after another while the block runs."""

    def __init__(self, session: aiohttp.ClientSession, url: str, interval: float = 0.005) -> None:
        super().__init__()
        self.session, self.url, self.interval = session, url, interval

    async def _sample(self) -> float:
        await asyncio.sleep(self.interval)
        start = time.perf_counter()
        async with self.session.get(self.url) as resp:
            await resp.read()
        return time.perf_counter() - start


async def longest_stall(work: Awaitable[T], interval: float = 0.005) -> tuple[T, float]:
    """`work`'s result and the loop's longest stall (seconds) while it ran."""
    async with LoopLag(interval) as lag:
        result = await work
    return result, lag.longest
