"""Whether every engine loop is alive and moving, for `/readyz`.

Each loop beats (`run_loop`) at the start of each cycle and after each step. A loop is *stopped* when its task
has ended (it only ends on cancel or a bug that escaped its guard) and *stalled* when it has not beaten for
longer than its interval plus the engine's bounds on one cycle: the wait for a pause in webhooks
(`engine.yield_max_seconds`) and the lease on claimed work (`engine.lease_seconds`: work held longer than that
is taken over by another instance, so a step that takes longer is stuck, not slow).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Loop:
    interval: float
    task: asyncio.Task[None]
    beat_at: float
    beats: int = 0


@dataclass
class LoopHealth:
    """The engine loops' heartbeats. `clock` is monotonic: the engine's own clock may be a test's fake one."""

    clock: Callable[[], float] = time.monotonic
    _loops: dict[str, _Loop] = field(default_factory=dict)

    def watch(self, name: str, interval: float, task: asyncio.Task[None]) -> None:
        self._loops[name] = _Loop(interval, task, self.clock())

    def beat(self, name: str) -> None:
        loop = self._loops.get(name)
        if loop is not None:
            loop.beat_at = self.clock()
            loop.beats += 1

    def cycled(self) -> bool:
        """Whether every loop has finished a step since it started (a cycle start and a step's end are two beats):
        what a test waits for to begin from a settled engine, its start-up round of every loop done."""
        return all(loop.beats >= 2 for loop in self._loops.values())

    def problems(self, cycle_bound: float) -> list[str]:
        """Why the engine is not healthy (empty when it is): each loop stopped, or silent past its bound."""
        now = self.clock()
        found = []
        for name, loop in sorted(self._loops.items()):
            if loop.task.done():
                found.append(f"engine loop {name} is not running")
            elif (silent := now - loop.beat_at) > loop.interval + cycle_bound:
                found.append(f"engine loop {name} stalled: no progress for {silent:.0f}s")
        return found
