"""Running counts behind the summary of a day or a month (migration 0007), so it never reads a million refunds.

`refund_tally` counts the refunds that became final per hour they were created in, account and state (a final
state never changes, so a refund is counted once, by the transaction that makes it final). `report_tally` counts
delivered reports per hour delivered and webhook-to-reported time, in seconds to within 10% (so an hour holds a few
dozen rows, whatever the spread). Refunds still on their way are few and counted live.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sql import Tx

HOUR = 3600
STEP = 1.1  # the resolution of report times: 10%
# Per bucket of the window (integer division on both backends: every operand is an integer), account and state.
TALLY_IN_WINDOW = """SELECT (hour - $1) / $3 AS bucket, account, state, SUM(n) AS n, SUM(fen) AS fen FROM refund_tally
                     WHERE hour >= $1 AND hour < $2 GROUP BY (hour - $1) / $3, account, state"""
REPORTS_IN_WINDOW = """SELECT seconds, SUM(n) AS n FROM report_tally WHERE hour >= $1 AND hour < $2
                       GROUP BY seconds"""
# Refunds still on their way, created in the window: the engine's backlog, found through refunds_by_state
# (`created_at + 0` keeps the planner off refunds_by_created, which would read every refund of the window).
UNRESOLVED_IN_WINDOW = """SELECT created_at, state, alipay_account, amount_fen FROM refunds
                          WHERE state IN ('received', 'batched', 'submitted', 'unknown')
                            AND created_at + 0 >= $1 AND created_at + 0 < $2"""


def hour_of(epoch: float) -> int:
    return int(epoch // HOUR) * HOUR


def rounded_seconds(seconds: float) -> int:
    """Whole seconds below 10, then the lower bound of a step of 10% (10, 11, 12, 13, 14, 16, 17, 19, 21...): an
    hour of reports holds a few dozen rows, so a month's percentiles read some twenty thousand (two significant
    figures made that fifty thousand, 76 ms of SQLite at a million refunds, bench/admin.py)."""
    whole = max(0, int(seconds))
    if whole < 10:
        return whole
    return int(10 * STEP ** int(math.log(whole / 10, STEP)))


async def _upsert(tx: Tx, table: str, keys: tuple[str, ...], counts: Mapping[tuple[Any, ...], tuple[int, ...]],
                  values: tuple[str, ...]) -> None:
    """Add `counts` (key -> values) to `table`, one statement."""
    if not counts:
        return
    width = len(keys) + len(values)
    rows = ", ".join("(" + ", ".join(f"${i * width + j + 1}" for j in range(width)) + ")" for i in range(len(counts)))
    add = ", ".join(f"{value} = {table}.{value} + excluded.{value}" for value in values)
    args = [item for key, amounts in counts.items() for item in (*key, *amounts)]
    await tx.execute(f"""INSERT INTO {table} ({", ".join(keys + values)}) VALUES {rows}
                         ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {add}""", *args)


async def count_final(tx: Tx, refunds: Iterable[Mapping[str, Any]]) -> None:
    """Count refunds (rows with created_at, alipay_account, state, amount_fen) that have just become final."""
    counts: Counter[tuple[int, str, str]] = Counter()
    fen: Counter[tuple[int, str, str]] = Counter()
    for row in refunds:
        key = (hour_of(row["created_at"]), str(row["alipay_account"]), str(row["state"]))
        counts[key] += 1
        fen[key] += int(row["amount_fen"])
    await _upsert(tx, "refund_tally", ("hour", "account", "state"),
                  {key: (n, fen[key]) for key, n in counts.items()}, ("n", "fen"))


async def count_reports(tx: Tx, created: Iterable[float], now: float) -> None:
    """Count reports delivered at `now` of refunds created at `created`."""
    counts = Counter((hour_of(now), rounded_seconds(now - at)) for at in created)
    await _upsert(tx, "report_tally", ("hour", "seconds"), {key: (n,) for key, n in counts.items()}, ("n",))
