"""The PostgreSQL backend: the shared SQL over an asyncpg pool, safe for several instances on one database.

Instances coordinate through the database alone: claims use `FOR UPDATE SKIP LOCKED`, batch creation and
intake take transaction-scoped advisory locks (see `SqlStore`), and migrations run under a session
advisory lock so instances starting together migrate once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from .sql import Dialect, Row, SqlStore

POSTGRES = Dialect(
    serial_pk="BIGSERIAL PRIMARY KEY",
    id_type="BIGINT",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    account_lock_sql="SELECT pg_advisory_xact_lock(hashtext($1))",
    for_update=" FOR UPDATE",
)
MIGRATION_LOCK = 0x7265_6675_6E64  # "refund": the session advisory lock held while migrating


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


class PostgresStore(SqlStore):
    dialect = POSTGRES

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the pool and apply pending migrations, one instance at a time."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=10)
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                async with conn.transaction():
                    await self.migrate(_PostgresTx(conn))
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        assert self._pool is not None, "the store is not open"
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PostgresTx(conn)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[_PostgresTx]:
        assert self._pool is not None, "the store is not open"
        async with self._pool.acquire() as conn:
            yield _PostgresTx(conn)
