"""The PostgreSQL backend: the shared SQL over an asyncpg pool, safe for several instances on one database.

Instances coordinate through the database alone: claims use `FOR UPDATE SKIP LOCKED`, batch creation and
intake take transaction-scoped advisory locks (see `SqlStore`), and migrations run under a session
advisory lock so instances starting together migrate once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg

from .base import StoreUnavailable
from .group_commit import GroupCommit
from .sql import Dialect, Row

POSTGRES = Dialect(
    serial_pk="BIGSERIAL PRIMARY KEY",
    id_type="BIGINT",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    account_lock_sql="SELECT pg_advisory_xact_lock(hashtext($1))",
    for_update=" FOR UPDATE",
)
# The connection or the server went away (class 08, class 57: a terminated backend, a shutdown), not the statement.
_LOST = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError, OSError)
MIGRATION_LOCK = 0x7265_6675_6E64  # "refund": the session advisory lock held while migrating
# Each statement planned for its own values, never a generic plan: asyncpg prepares every statement, and after five
# runs PostgreSQL may keep a generic plan costed when the table was small. On a backlog that grew from nothing (a
# burst of 100,000 webhooks) that plan scanned each partial index whole, and the engine fell minutes behind: 100,000
# end to end took 64-332 s with reports up to 296 s late, 56.6 s with 0.64 s of drain planned each time
# (bench/e2e.py --backends postgres, docs/performance.md).
PLANNING = {"plan_cache_mode": "force_custom_plan"}


class _PostgresTx:
    """Adapts an asyncpg connection to the shared `Tx` calls; asyncpg Records are read as mappings."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return await self._conn.fetchrow(sql, *args)

    async def execute(self, sql: str, *args: object) -> None:
        await self._conn.execute(sql, *args)


class PostgresStore(GroupCommit):
    dialect = POSTGRES

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool and apply pending migrations, one instance at a time."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=10, server_settings=PLANNING)
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                async with conn.transaction():
                    await self.migrate(_PostgresTx(conn))
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        await self._flushed()
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        assert self._pool is not None, "the store is not open"
        with _lost_connection_is_unavailable():
            async with self._pool.acquire() as conn, conn.transaction():
                yield _PostgresTx(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_PostgresTx]:
        assert self._pool is not None, "the store is not open"
        with _lost_connection_is_unavailable():
            async with self._pool.acquire() as conn:
                yield _PostgresTx(conn)


@contextlib.contextmanager
def _lost_connection_is_unavailable() -> Iterator[None]:
    """A backend terminated, the server shutting down or out of reach: StoreUnavailable. (The pool drops a
    closed connection and opens a new one for the next call.)"""
    try:
        yield
    except _LOST as exc:
        raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc
    except asyncpg.InterfaceError as exc:
        # Leaving `conn.transaction()` on a connection that just died says so with an InterfaceError.
        if not isinstance(exc.__context__, _LOST):
            raise
        raise StoreUnavailable(f"PostgreSQL: {type(exc.__context__).__name__}: {exc.__context__}") from exc


class ReadOnlyPostgresStore(PostgresStore):
    """The operator's reader: every transaction read-only, never a migration (a database at another schema version
    is refused, not changed)."""

    async def open(self) -> None:
        with _lost_connection_is_unavailable():
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2,
                                                   server_settings={"default_transaction_read_only": "on"})
        try:
            await self.check_schema()
        except asyncpg.UndefinedTableError as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}: not a refund-adapter database") from exc
