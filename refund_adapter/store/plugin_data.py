"""Plugins' own small durable data (a payment id -> trade number map, a poll cursor), kept in the store so
it shares its durability and its backends; the SQL is portable like the rest of the store's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .sql import Tx


class _Connections(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    def reading(self) -> AbstractAsyncContextManager[Tx]: ...


class PluginDataSql:
    """Mixed into the SQL store: `plugin_data_get` and `plugin_data_put` of the store interface."""

    async def plugin_data_get(self: _Connections, plugin: str, key: str) -> str | None:
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT value FROM plugin_data WHERE plugin = $1 AND key = $2", plugin, key)
        return None if row is None else str(row["value"])

    async def plugin_data_put(self: _Connections, plugin: str, items: Mapping[str, str], now: float) -> None:
        async with self.transaction() as tx:
            for key, value in items.items():
                await tx.execute(
                    """INSERT INTO plugin_data (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4)
                       ON CONFLICT (plugin, key)
                       DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at""",
                    plugin, key, value, now,
                )

    async def plugin_data_items(self: _Connections, plugin: str, prefix: str) -> dict[str, str]:
        async with self.reading() as conn:
            rows = await conn.fetch(
                "SELECT key, value FROM plugin_data WHERE plugin = $1 AND substr(key, 1, $2) = $3 ORDER BY key",
                plugin, len(prefix), prefix,
            )
        return {str(row["key"]): str(row["value"]) for row in rows}

    async def plugin_data_delete(self: _Connections, plugin: str, keys: Sequence[str]) -> None:
        async with self.transaction() as tx:
            for key in keys:
                await tx.execute("DELETE FROM plugin_data WHERE plugin = $1 AND key = $2", plugin, key)
