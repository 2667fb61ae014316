"""The embedded default backend: one SQLite file in WAL mode, `synchronous=FULL`, one writer.

Every write runs in a transaction on the single writer connection, one at a time, in line on the event loop,
COMMIT included: such a transaction never holds the writer across event-loop turns. The COMMIT's fsync blocks
the loop (0.1-0.3 ms on the development machine), but webhook intake commits in groups, so that cost is shared
by every request of a group. Measured with `bench/ingest.py`: sending every statement to a thread (aiosqlite)
halved throughput, and sending only the COMMIT to a thread cost about 15% more CPU per request than running
it in line, in thread hand-offs and GIL contention with the loop. Reads run on a second connection, on a thread.
Work over many rows (a batch of a thousand refunds, a chunk of an operator's bulk action) is the exception: it
runs in a `bulk_transaction`, whose statements run on a thread of the writer's own, so the loop is free while
they do (in line they held it for tens of milliseconds, and seconds for a million dead letters: bench/stalls.py).

Webhook intake uses group commit (store/group_commit.py): a group's COMMIT, and its fsync, is shared by all of it.

`serve` may run its engine in a process of its own on the same file (engine/process.py): each process opens the
store in its `role`. Their write transactions take turns through a lock file (`WRITE_LOCK`, flock) taken before
BEGIN and let go after COMMIT: a process that finds it taken waits on a thread of its own, so its event loop goes
on, and is woken as the other lets go. Without it they met at SQLite's own lock, whose busy handler sleeps the
waiting thread (the event loop) for up to 100 ms at a time; polling it from the loop instead cost the web process
a third of its CPU under load (bench/ingest.py, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Literal, TextIO, TypeVar
from urllib.parse import quote

from .base import StoreUnavailable
from .group_commit import GroupCommit
from .sql import Dialect, Row

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\$(\d+)")
# Prepared statements kept per connection. Intake's statements take the group's size (multi-row VALUES, IN
# lists), so a busy adapter runs three shapes per group size: with sqlite3's default of 128 they were evicted and
# re-prepared, 3.3 µs more per webhook in `serve` (bench/ingest.py, 26 November).
STATEMENT_CACHE = 1024
# Errors of the disk, not of the statement: the same transaction can succeed once space or the disk is back.
_UNAVAILABLE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_CANTOPEN})
# Roles (see the module docstring): which of the two lock files each takes, whether it resets leases at open.
Role = Literal["all", "web", "engine"]
SERVICE_LOCK, ENGINE_LOCK = ".lock", ".engine.lock"
_LOCKS: dict[str, tuple[str, ...]] = {
    "all": (SERVICE_LOCK, ENGINE_LOCK), "web": (SERVICE_LOCK,), "engine": (ENGINE_LOCK,),
}
# The engine process waits this long for the engine lock of a predecessor still dying (killed with its parent).
ENGINE_LOCK_WAIT_SECONDS = 30.0
WRITE_LOCK = ".write.lock"  # taken around each write transaction by the web and engine processes
SQLITE = Dialect(serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT", id_type="INTEGER", skip_locked="",
                 account_lock_sql=None)


@functools.lru_cache(maxsize=256)
def _sql(text: str) -> str:
    """`$n` placeholders as SQLite's `?n` (the shared SQL is written for asyncpg)."""
    return _PLACEHOLDER.sub(r"?\1", text)


@contextlib.contextmanager
def _disk_errors_are_unavailable() -> Iterator[None]:
    """A full disk or a failing one is StoreUnavailable: the transaction is rolled back, and may succeed later."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF not in _UNAVAILABLE:
            raise
        raise StoreUnavailable(f"SQLite: {exc}") from exc


def _rollback(writer: sqlite3.Connection) -> None:
    """Undo what is left of the transaction. After some errors (SQLITE_FULL in a statement) SQLite has already
    rolled it back itself, and a second ROLLBACK would raise and hide the error that matters."""
    if writer.in_transaction:
        writer.execute("ROLLBACK")


class _InlineTx:
    """The shared `Tx` calls on the writer connection, run in line (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self._conn.execute(_sql(sql), args).fetchall()

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return self._conn.execute(_sql(sql), args).fetchone()

    async def execute(self, sql: str, *args: object) -> None:
        self._conn.execute(_sql(sql), args)


class _ThreadTx:
    """The shared `Tx` calls on a connection, each run on that connection's own thread (the reader's, or the
    writer's for a bulk transaction)."""

    def __init__(self, conn: sqlite3.Connection, run: Callable[[Callable[[], T]], Awaitable[T]]) -> None:
        self._conn = conn
        self._run = run

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return await self._run(lambda: self._conn.execute(_sql(sql), args).fetchall())

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return await self._run(lambda: self._conn.execute(_sql(sql), args).fetchone())

    async def execute(self, sql: str, *args: object) -> None:
        await self._run(lambda: self._conn.execute(_sql(sql), args))


class SqliteStore(GroupCommit):
    dialect = SQLITE

    def __init__(self, path: str | Path, role: Role = "all") -> None:
        self.path = str(path)
        self.role = role
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._read_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._write_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-bulk-write")
        self._file_locks: list[TextIO] = []
        self._process_write_lock: TextIO | None = None  # WRITE_LOCK, in serve's two-process layout
        self._lock_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-write-lock")

    def _connect(self) -> sqlite3.Connection:
        # Each connection is used by one thread: the writer by the loop, the reader by its own thread (which
        # is not the one that opened it, hence check_same_thread=False).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               cached_statements=STATEMENT_CACHE)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            for suffix in _LOCKS[self.role]:
                await self._lock_file(suffix)
            if self.role != "all":
                self._process_write_lock = open(self.path + WRITE_LOCK, "w")  # noqa: SIM115, ASYNC230 - as above
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode = WAL")
        self._writer.execute("PRAGMA synchronous = FULL")  # money state: every commit reaches the disk
        async with self.transaction() as tx:
            await self.migrate(tx)
            if self.role != "web":
                # One engine works on the file (see _lock_file): what an earlier one had leased died with it.
                await tx.execute("UPDATE batches SET lease_until = 0 WHERE state = 'sending'")
                # Reports it had claimed (or was waiting to retry) are due now, on whatever clock the engine keeps.
                await tx.execute("UPDATE refunds SET report_next_at = 0 WHERE report_state = 'pending'")
        self._reader = self._writer if self.path == ":memory:" else self._connect()

    async def _lock_file(self, suffix: str) -> None:
        """SQLite is the single-instance backend: a second service on the same file is refused, not raced, and
        only one engine ever works on it (the engine process waits for one killed with its parent to be gone)."""
        lock = open(self.path + suffix, "w")  # noqa: SIM115, ASYNC230 - held for the store's lifetime; never blocks
        deadline = time.monotonic() + (ENGINE_LOCK_WAIT_SECONDS if self.role == "engine" else 0)
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.close()
                    raise RuntimeError(f"{self.path} is in use by another refund-adapter process (use PostgreSQL "
                                       "to run several instances)") from None
                await asyncio.sleep(0.05)
        self._file_locks.append(lock)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        """This process's writer and, between serve's two processes, the file's (see the module docstring)."""
        async with self._write_lock:
            lock = self._process_write_lock
            if lock is None:
                yield
                return
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                taken = asyncio.get_running_loop().run_in_executor(self._lock_thread, fcntl.flock, lock, fcntl.LOCK_EX)
                try:
                    await asyncio.shield(taken)
                except asyncio.CancelledError:
                    await asyncio.wait([taken])  # it is taken once the thread returns: let it go again
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    raise
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def close(self) -> None:
        await self._flushed()
        loop = asyncio.get_running_loop()
        reader, writer = self._reader, self._writer
        self._writer = self._reader = None
        # Close each connection where it is used, after the work already queued there: never under a
        # statement still running on another thread.
        if reader is not None and reader is not writer:
            await loop.run_in_executor(self._read_thread, reader.close)
        if writer is not None:
            async with self._write_lock:
                writer.close()
        self._read_thread.shutdown()
        self._write_thread.shutdown()
        self._lock_thread.shutdown()
        for lock in [*self._file_locks, *filter(None, [self._process_write_lock])]:
            lock.close()
        self._file_locks.clear()
        self._process_write_lock = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_InlineTx]:
        writer = self._writer
        assert writer is not None, "the store is not open"
        async with self._writing():
            with _disk_errors_are_unavailable():
                writer.execute("BEGIN IMMEDIATE")
                try:
                    yield _InlineTx(writer)
                except BaseException:
                    _rollback(writer)
                    raise
                try:
                    writer.execute("COMMIT")
                except sqlite3.Error:
                    _rollback(writer)  # the disk refused it: nothing of it stays
                    raise

    def bulk_transaction(self) -> AbstractAsyncContextManager[_InlineTx | _ThreadTx]:
        """A write transaction for work over many rows (a batch of a thousand, a chunk of an operator's bulk
        action), which in line would hold the event loop for tens of milliseconds: its statements, COMMIT
        included, run on the writer's own thread, so the loop goes on. It holds the writer across loop turns;
        intake waits for it, but the loop does not.

        Except in serve's engine process, whose loop answers no request: there it runs in line. On a thread, each
        statement's end waited for the GIL while the loop delivered reports (up to the 5 ms switch interval each),
        and a batch's transaction held SQLite's writer, which intake waits for, 2-3 times as long (43-57 ms against
        17-20 ms for a thousand refunds: docs/performance.md)."""
        return self.transaction() if self.role == "engine" else self._threaded_transaction()

    @asynccontextmanager
    async def _threaded_transaction(self) -> AsyncIterator[_ThreadTx]:
        writer = self._writer
        assert writer is not None, "the store is not open"
        loop = asyncio.get_running_loop()

        async def run(work: Callable[[], T]) -> T:
            future = loop.run_in_executor(self._write_thread, work)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                # The statement still runs: the writer is released only once it is done with the connection.
                await asyncio.wait([future])
                raise

        async with self._writing():
            with _disk_errors_are_unavailable():
                try:
                    await run(lambda: writer.execute("BEGIN IMMEDIATE"))  # cancelled here, it has still begun
                    yield _ThreadTx(writer, run)
                except BaseException:
                    await run(lambda: _rollback(writer))
                    raise
                try:
                    await run(lambda: writer.execute("COMMIT"))
                except sqlite3.Error:
                    await run(lambda: _rollback(writer))  # the disk refused it: nothing of it stays
                    raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_ThreadTx]:
        reader = self._reader
        assert reader is not None, "the store is not open"
        loop = asyncio.get_running_loop()
        yield _ThreadTx(reader, lambda work: loop.run_in_executor(self._read_thread, work))

    async def _writer_free(self) -> None:
        async with self._write_lock:
            pass


class ReadOnlySqliteStore(SqliteStore):
    """The operator's reader beside a running `serve`: a `mode=ro` connection takes neither the store's file lock
    nor SQLite's write lock, and in WAL mode it reads the last committed state while the writer goes on. It never
    migrates: a file that is missing or at another schema version is refused, not changed."""

    async def open(self) -> None:
        if self.path == ":memory:":
            raise StoreUnavailable("an in-memory store lives only inside its own process")
        uri = f"file://{quote(self.path)}?mode=ro"  # the URL's path: absolute, so the URI's authority stays empty
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 10000")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite {self.path}: {exc}") from exc
        self._reader = conn
        try:
            await self.check_schema()
        except sqlite3.Error as exc:  # not a database, or no schema_version table: not one of ours
            raise StoreUnavailable(f"SQLite {self.path}: {exc}") from exc

    # close(): the base's closes the reader and finds no writer, no lock to let go.

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_InlineTx]:
        raise StoreUnavailable("this store was opened read-only")
        yield  # pragma: no cover - makes this an async generator

    @asynccontextmanager
    async def bulk_transaction(self) -> AsyncIterator[_ThreadTx]:
        raise StoreUnavailable("this store was opened read-only")
        yield  # pragma: no cover - makes this an async generator
