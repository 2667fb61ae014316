"""Breaking the database under a running adapter: a PostgreSQL backend terminated inside its transaction, and a
full disk under SQLite. Only what the tests own is touched: backends of the test's own database (chosen by
`datname`), and a small file system mounted for the test."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from refund_adapter.testing import wait_until

# Of our own database, the backends waiting on a lock, excluding the killer's own connections ($1).
WAITING = """SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> ALL($1::int[])
               AND wait_event_type = 'Lock' AND query ILIKE $2"""


class BackendKiller:
    """Catches the adapter's PostgreSQL backends inside a transaction and terminates them there.

    `locked(table)` holds a SHARE lock on a table from a connection of its own (reads and row locks go on, writes
    wait), so the adapter's next write to it waits inside its open transaction; `kill_waiting(statement)` then
    waits for such a backend and terminates every backend of this database that waits on a lock
    (`pg_terminate_backend`, never a server restart, never another database's backend)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.own_pids: list[int] = []
        self.killed: list[str] = []  # the statement each terminated backend was running

    @contextlib.asynccontextmanager
    async def locked(self, table: str) -> AsyncIterator[None]:
        conn = await asyncpg.connect(self.dsn)
        self.own_pids.append(conn.get_server_pid())
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {table} IN SHARE MODE")
                yield
        finally:
            await conn.close()

    async def kill_waiting(self, statement: str) -> int:
        """Once a backend of ours waits in `statement` (a fragment of its SQL), terminate every waiting one."""
        conn = await asyncpg.connect(self.dsn)
        try:

            async def caught() -> bool:
                return bool(await conn.fetch(WAITING, self.own_pids, f"%{statement}%"))

            await wait_until(caught, within=30, what=f"a backend waiting in {statement}")
            rows = await conn.fetch(
                f"SELECT query, pg_terminate_backend(pid) AS killed FROM ({WAITING}) AS w "
                "JOIN pg_stat_activity USING (pid)",
                self.own_pids, "%",
            )
        finally:
            await conn.close()
        killed = [" ".join(str(row["query"]).split())[:40] for row in rows if row["killed"]]
        self.killed += killed
        return len(killed)

    def summary(self) -> str:
        """How many backends were terminated, in which statements (their first words)."""
        statements = Counter(" ".join(statement.split("(")[0].split()[:4]) for statement in self.killed)
        return f"{len(self.killed)} backends terminated mid-transaction in " + ", ".join(
            f"{statement} x{count}" for statement, count in sorted(statements.items())
        )


class SmallDisk:
    """A tmpfs of `size` mounted at `path` for the test (root only), filled up and freed on demand."""

    def __init__(self, path: Path, size: str = "8m") -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler"

    @contextlib.contextmanager
    def mounted(self) -> Iterator[SmallDisk]:
        self.path.mkdir(parents=True, exist_ok=True)
        mount = ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)]
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PermissionError(f"cannot mount a tmpfs: {done.stderr.strip()}")
        try:
            yield self
        finally:
            subprocess.run(["umount", "--lazy", str(self.path)], check=True)  # even if a file is still open

    @contextlib.contextmanager
    def full(self) -> Iterator[int]:
        """Fill every free byte (yields how many), and free them again at the end of the block."""
        written = 0
        chunk = b"\0" * 65536
        with open(self.filler, "wb", buffering=0) as filler:
            try:
                while True:
                    written += filler.write(chunk) or 0
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        try:
            yield written
        finally:
            os.unlink(self.filler)


def integrity(db: Path) -> str:
    """SQLite's own consistency check of the file, through a connection of its own."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
