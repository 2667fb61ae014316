"""The journals of refunds and batches (migration 0007): what happened, when and why, for the operator.

Every entry is written by the transaction of the change it describes, so a journal never says more or less
than what was committed. A detail is JSON bounded in size: what Alipay, a platform or a request sent is cut,
never refused (MAX_TEXT characters a string, MAX_ITEMS items a list, MAX_DEPTH levels).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .base import JournalEntry
from .shapes import power_of_two_chunks

if TYPE_CHECKING:
    from .sql import Tx

MAX_TEXT = 2000  # characters of one string kept (a 1000-line detail_data is cut; each refund's line is its own)
MAX_ITEMS = 100  # items of one list kept
MAX_DEPTH = 4
CUT = "…"
# Never stored, whoever passes them: a request's signature and keys (the channel passes the unsigned parameters;
# this is the second line of defence).
SECRET_KEYS = frozenset({"sign", "sign_type", "key", "md5_key", "private_key", "private_key_pem", "token"})
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def bounded(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-ready data no larger than the bounds, secrets taken out."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + CUT
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return bounded(str(value), depth)
    if isinstance(value, Mapping):
        return {str(k)[:100]: bounded(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]
                if str(k).lower() not in SECRET_KEYS}
    if isinstance(value, list | tuple):
        items = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        return [*items, CUT] if len(value) > MAX_ITEMS else items
    return bounded(str(value), depth)


def encode(detail: Mapping[str, Any]) -> str:
    return _JSON.encode(bounded(detail))


async def refund_events(tx: Tx, refund_ids: Sequence[int], now: float, kind: str, detail: Mapping[str, Any]) -> None:
    """The same event in the journal of each refund of `refund_ids`, a statement per power-of-two chunk of them."""
    text = encode(detail)
    for chunk in power_of_two_chunks(refund_ids):  # a dozen statement shapes, whatever the count (shapes.py)
        rows = ", ".join(f"(${i + 4}, $1, $2, $3)" for i in range(len(chunk)))
        await tx.execute(f"INSERT INTO refund_events (refund_id, at, kind, detail) VALUES {rows}",
                         now, kind, text, *chunk)


async def refund_events_each(tx: Tx, events: Sequence[tuple[int, Mapping[str, Any]]], now: float, kind: str) -> None:
    """An event of its own for each refund: (refund id, detail)."""
    for chunk in power_of_two_chunks(events):  # a dozen statement shapes, whatever the count (shapes.py)
        rows = ", ".join(f"(${2 * i + 3}, $1, $2, ${2 * i + 4})" for i in range(len(chunk)))
        args = [value for refund_id, detail in chunk for value in (refund_id, encode(detail))]
        await tx.execute(f"INSERT INTO refund_events (refund_id, at, kind, detail) VALUES {rows}", now, kind, *args)


async def batch_event(tx: Tx, batch_id: int, now: float, kind: str, detail: Mapping[str, Any]) -> None:
    await tx.execute("INSERT INTO batch_events (batch_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
                     batch_id, now, kind, encode(detail))


def _entries(rows: Sequence[Mapping[str, Any]]) -> list[JournalEntry]:
    return [JournalEntry(datetime.fromtimestamp(row["at"], UTC), row["kind"], json.loads(row["detail"]))
            for row in rows]


async def read_refund_journal(conn: Tx, refund_id: int, limit: int) -> list[JournalEntry]:
    """`accepted` (the refund's created_at: the webhook wrote no event of its own), then its events in order."""
    row = await conn.fetchrow("SELECT created_at, platform, shop FROM refunds WHERE id = $1", refund_id)
    if row is None:
        return []
    arrival = JournalEntry(datetime.fromtimestamp(row["created_at"], UTC), "accepted",
                           {"platform": row["platform"], "shop": row["shop"]})
    events = await conn.fetch(
        "SELECT at, kind, detail FROM refund_events WHERE refund_id = $1 ORDER BY id LIMIT $2", refund_id, limit
    )
    return [arrival, *_entries(events)]


async def read_batch_journal(conn: Tx, batch_id: int, limit: int) -> list[JournalEntry]:
    events = await conn.fetch(
        "SELECT at, kind, detail FROM batch_events WHERE batch_id = $1 ORDER BY id LIMIT $2", batch_id, limit
    )
    return _entries(events)
