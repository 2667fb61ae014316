"""The embedded default backend: one SQLite file in WAL mode, `synchronous=FULL`, one writer.

Every write runs in a transaction on the single writer connection, one at a time. Webhook intake uses group
commit: requests that arrive while a transaction is in progress are stored together in the next one, so
concurrent webhooks share one fsync instead of queueing for one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

import aiosqlite

from ..models import RefundRequest
from .base import AcceptResult
from .sql import Dialect, Row, SqlStore

_Queued = tuple[Sequence[RefundRequest], float, "asyncio.Future[list[AcceptResult]]"]
_PLACEHOLDER = re.compile(r"\$(\d+)")
SQLITE = Dialect(serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT", id_type="INTEGER", skip_locked="",
                 account_lock_sql=None)


class _SqliteTx:
    """Adapts aiosqlite to the shared `Tx` calls, rewriting `$n` placeholders to SQLite's `?n`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._conn.execute(_PLACEHOLDER.sub(r"?\1", sql), args) as cursor:
            return list(await cursor.fetchall())

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: object) -> None:
        await self._conn.execute(_PLACEHOLDER.sub(r"?\1", sql), args)


class SqliteStore(SqlStore):
    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._queued: list[_Queued] = []
        self._flusher: asyncio.Task[None] | None = None
        self._file_lock: TextIO | None = None

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout = 10000")
        await conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._lock_file()
        self._writer = await self._connect()
        await self._writer.execute("PRAGMA journal_mode = WAL")
        await self._writer.execute("PRAGMA synchronous = FULL")  # money state: every commit reaches the disk
        async with self.transaction() as tx:
            await self.migrate(tx)
            # One process owns the file (see _lock_file): what an earlier process had leased died with it.
            await tx.execute("UPDATE batches SET lease_until = 0 WHERE state = 'sending'")
            await tx.execute(
                "UPDATE refunds SET report_next_at = $1 WHERE report_state = 'pending' AND report_next_at > $1",
                time.time(),
            )
        self._reader = self._writer if self.path == ":memory:" else await self._connect()

    def _lock_file(self) -> None:
        """SQLite is the single-instance backend: a second process on the same file is refused, not raced."""
        self._file_lock = open(self.path + ".lock", "w")  # noqa: SIM115 - held open for the store's lifetime
        try:
            fcntl.flock(self._file_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file_lock.close()
            self._file_lock = None
            raise RuntimeError(f"{self.path} is in use by another refund-adapter process (use PostgreSQL to run "
                               "several instances)") from None

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._writer = self._reader = None
        if self._file_lock is not None:
            self._file_lock.close()
            self._file_lock = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        assert self._writer is not None, "the store is not open"
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._writer)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_SqliteTx]:
        assert self._reader is not None, "the store is not open"
        yield _SqliteTx(self._reader)

    async def accept(self, requests: Sequence[RefundRequest], now: float) -> list[AcceptResult]:
        """Group commit: join the next transaction with whatever else is waiting, return once it is durable."""
        future: asyncio.Future[list[AcceptResult]] = asyncio.get_running_loop().create_future()
        self._queued.append((requests, now, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._queued:
            async with self._write_lock:
                group, self._queued = self._queued, []
            try:
                await self._commit_group(group)
            except Exception:
                # One caller's requests broke the shared transaction: commit each alone, so only it fails.
                for member in group:
                    with contextlib.suppress(Exception):
                        await self._commit_group([member])

    async def _commit_group(self, group: list[_Queued]) -> None:
        try:
            async with self.transaction() as tx:
                results = [await self.accept_in(tx, requests, now) for requests, now, _ in group]
        except Exception as exc:
            if len(group) == 1 and not group[0][2].done():
                group[0][2].set_exception(exc)
            raise
        for (_, _, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
