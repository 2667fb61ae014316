"""Large stores built in seconds for tests and benchmarks: refunds (and batches) inserted by set-based SQL.

A million refunds through the webhook path takes minutes; the questions asked of a large store (does a request
or an engine step hold the event loop?) only need the rows to exist, in the states the question is about. The
rows are generated inside the database by a recursive common table expression, which both backends run.
"""

from __future__ import annotations

import secrets

from .sql import SqlStore

ROWS_PER_STATEMENT = 100_000
# The n-th synthetic trade number: 16 digits, like Alipay's, distinct per refund.
FIRST_TRADE = 2026_0000_0000_0000


def _series(first: int, last: int) -> str:
    return (f"WITH RECURSIVE n(i) AS (SELECT CAST({int(first)} AS BIGINT) UNION ALL "
            f"SELECT i + 1 FROM n WHERE i < {int(last)})")


async def add_batches(store: SqlStore, count: int, *, account: str = "main", state: str = "completed",
                      now: float = 0.0, next_query_at: float | None = None) -> list[int]:
    """`count` batches (empty until refunds are added to them); returns their ids in order."""
    async with store.transaction() as tx:
        rows = await tx.fetch(
            f"""{_series(1, count)}
                INSERT INTO batches (account, batch_no, state, next_query_at, created_at, updated_at)
                SELECT $1, 'synthetic-' || $5 || '-' || CAST(i AS TEXT), $2, $3, $4, $4 FROM n RETURNING id""",
            account, state, next_query_at, now, secrets.token_hex(4),
        )
    return sorted(int(row["id"]) for row in rows)


async def add_refunds(store: SqlStore, count: int, *, state: str = "succeeded", report_state: str = "delivered",
                      account: str = "main", now: float = 0.0, report_next_at: float | None = None,
                      batch_ids: list[int] | None = None) -> None:
    """`count` refunds of the `generic` platform, shop `synthetic`, each of its own trade, in the given states;
    spread in equal runs over `batch_ids` when given."""
    async with store.reading() as conn:  # refund ids and trade numbers distinct from those already stored
        row = await conn.fetchrow("SELECT COALESCE(MAX(id), 0) AS top FROM refunds")
    top = int(row["top"]) if row else 0
    per_batch = -(-count // len(batch_ids)) if batch_ids else 0
    for first in range(top, top + count, ROWS_PER_STATEMENT):
        last = min(first + ROWS_PER_STATEMENT, top + count) - 1
        batch = f"{batch_ids[0]} + (i - {top}) / {per_batch}" if batch_ids else "NULL"
        async with store.transaction() as tx:
            await tx.execute(
                f"""{_series(first, last)}
                    INSERT INTO refunds (platform, shop, platform_refund_id, order_id, trade_no, amount_fen,
                                         currency, reason, alipay_account, context, state, batch_id, report_state,
                                         report_next_at, created_at, updated_at)
                    SELECT 'generic', 'synthetic', 'r-' || CAST(i AS TEXT), 'o-' || CAST(i AS TEXT),
                           CAST({FIRST_TRADE} + i AS TEXT), 100, 'CNY', 'synthetic', $1, '{{}}', $2, {batch},
                           $3, $4, $5, $5
                    FROM n""",
                account, state, report_state, report_next_at, now,
            )
