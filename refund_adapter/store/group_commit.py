"""Group commit for webhook intake, on both backends: the webhooks that reach `accept` within
GROUP_COMMIT_WINDOW_SECONDS of the first (or while the group before them commits) are stored by one set-based
transaction (`SqlStore.accept_in`), with one commit and so one fsync, instead of one each.

On SQLite the commit's fsync blocks the event loop, so sharing it is most of intake's speed there. On PostgreSQL
each webhook took a pooled connection and a commit of its own: at 64 in flight it stored about 110 webhooks a
second on the project's machine (bench/ingest.py --store postgres, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from ..models import RefundRequest
from .base import AcceptResult
from .sql import SqlStore

_Queued = tuple[Sequence[RefundRequest], float, "asyncio.Future[list[AcceptResult]]"]
# How long the first webhook of a group waits for others to join it. Measured with `bench/ingest.py` (64 in
# flight) on asyncio's loop: without it groups averaged 13 webhooks, with 0.5 ms 39, and throughput rose by about
# 15%, because each group's fsync blocks the loop. Like PostgreSQL's commit_delay; it adds at most this to one
# webhook. Timers have 1 ms resolution: asyncio's loop rounds 0.5 ms up to 1 ms, uvloop down to the next loop
# iteration, where groups still average 35 (the webhooks read in one pass over the ready sockets), and 1 ms on
# uvloop measured 0.94x the requests/s (bench/ab.py, 26 November).
GROUP_COMMIT_WINDOW_SECONDS = 0.0005


class GroupCommit(SqlStore):
    """`accept` by group commit; a backend calls `_flushed()` as it closes."""

    _queued: list[_Queued]
    _flusher: asyncio.Task[None] | None = None

    async def accept(self, requests: Sequence[RefundRequest], now: float) -> list[AcceptResult]:
        """Group commit: join the next transaction with whatever else is waiting, return once it is durable."""
        future: asyncio.Future[list[AcceptResult]] = asyncio.get_running_loop().create_future()
        if "_queued" not in self.__dict__:
            self._queued = []
        self._queued.append((requests, now, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future  # a cancelled caller cancels only its wait: the group is stored all the same

    async def _flushed(self) -> None:
        """Wait for the group being stored, if any (on close)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _writer_free(self) -> None:
        """Return once a write transaction could start now: a group keeps growing while the writer is busy."""

    async def _flush(self) -> None:
        while self._queued:
            await asyncio.sleep(GROUP_COMMIT_WINDOW_SECONDS)
            await self._writer_free()
            group, self._queued = self._queued, []
            try:
                await self._commit_group(group)
            except Exception:
                # One caller's requests broke the shared transaction: commit each alone, so only it fails. A group of
                # one has had its answer (the error, a 503) already: storing it again now would keep what was refused.
                for member in group if len(group) > 1 else ():
                    with contextlib.suppress(Exception):
                        await self._commit_group([member])

    async def _commit_group(self, group: list[_Queued]) -> None:
        try:
            async with self.transaction() as tx:
                # One set-based accept for the whole group, stamped with its latest arrival time.
                results = await self.accept_in(tx, [r for requests, _, _ in group for r in requests],
                                               max(now for _, now, _ in group))
        except Exception as exc:
            if len(group) == 1 and not group[0][2].done():
                group[0][2].set_exception(exc)
            raise
        start = 0
        for requests, _, future in group:
            if not future.done():
                future.set_result(results[start : start + len(requests)])
            start += len(requests)
