"""The SQL of the operator's questions: which refunds match a filter (keyset pages), and a window's summary.

Filters on enumerated values (state, report state, review) are written into the SQL as literals, never values
from outside (they are enum members), so the planner can use a partial index that names them
(refunds_dead_letters, refunds_in_review). Every other value is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..models import ReportState
from .base import RefundFilter


def is_selective(where: RefundFilter) -> bool:
    """Whether an index finds the page's few candidates (a search, a batch, the refunds in review, the dead
    letters: refunds_dead_letters, 0006); otherwise the refunds are read in id order over a bounded range."""
    return (where.search is not None or where.batch_id is not None or where.review is True
            or where.report_state is ReportState.DEAD)


# The refund created first at or after a time, and the one created last before it: one probe of
# refunds_by_created each, to bound by id a scan filtered by created_at.
FIRST_AT_OR_AFTER = "SELECT id FROM refunds WHERE created_at >= $1 ORDER BY created_at LIMIT 1"
LAST_BEFORE = "SELECT id FROM refunds WHERE created_at < $1 ORDER BY created_at DESC LIMIT 1"
MAX_REFUND_ID = "SELECT MAX(id) AS id FROM refunds"


def refund_query(where: RefundFilter, batch_id: int | None, *, limit: int, before_id: int | None,
                 after_id: int | None, window: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """The SELECT of one keyset page and its arguments. `batch_id`: the batch whose reference is the search value,
    already looked up (a join would keep the planner from using refunds_by_batch for that term). `window`: the
    ids [low, high) a scan reads; its filters are then written so that no index but the primary key's is used
    (`column || ''`, `column + 0`, valid in both dialects), since an index on a column that most refunds share
    (a state, a platform) would have every matching refund sorted before the first page is known. The refunds in
    review and the dead letters are read from their partial index alone, likewise: for those in review, whose
    index is not in id order, the keyset is `id + 0`, or SQLite walks the primary key backwards through every
    refund to find none (a quarter of a second at a million, found by bench/admin.py's needs-attention page)."""
    conditions: list[str] = []
    args: list[Any] = []
    scan = window is not None
    partial = not scan and where.search is None and where.batch_id is None  # refunds_in_review or _dead_letters
    key = "id + 0" if partial and where.review is True and where.report_state is not ReportState.DEAD else "id"

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    def text(column: str) -> str:
        return f"{column} || ''" if scan or partial else column

    if where.state is not None:
        conditions.append(f"{text('state')} = '{where.state.value}'")
    if where.report_state is ReportState.DEAD and partial:
        conditions.append("report_state = 'dead'")  # as refunds_dead_letters names it
    elif where.report_state is not None:
        conditions.append(f"{text('report_state')} = '{where.report_state.value}'")
    if where.review is not None:
        conditions.append("review IS NOT NULL" if where.review else "review IS NULL")
    for column, value in (("platform", where.platform), ("shop", where.shop), ("alipay_account", where.account)):
        if value is not None:
            conditions.append(f"{text(column)} = {param(value)}")
    if where.batch_id is not None:
        conditions.append(f"batch_id = {param(where.batch_id)}")
    created = "created_at + 0" if scan or partial else "created_at"
    if where.created_from is not None:
        conditions.append(f"{created} >= {param(where.created_from)}")
    if where.created_to is not None:
        conditions.append(f"{created} < {param(where.created_to)}")
    if where.search is not None:
        value = param(where.search)
        terms = [f"order_id = {value}", f"platform_refund_id = {value}", f"trade_no = {value}"]
        if batch_id is not None:
            terms.append(f"batch_id = {param(batch_id)}")
        conditions.append("(" + " OR ".join(terms) + ")")
    order = "DESC"
    if window is not None:
        conditions.append(f"id >= {param(window[0])} AND id < {param(window[1])}")
    if after_id is not None:
        conditions.append(f"{key} > {param(after_id)}")
        order = "ASC"  # the page just above, read upwards and turned round by the caller
    elif before_id is not None:
        conditions.append(f"{key} < {param(before_id)}")
    sql = "SELECT * FROM refunds"
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return f"{sql} ORDER BY {key} {order} LIMIT {param(limit)}", args


def percentile(counts: Mapping[int, int], share: float) -> float | None:
    """The value under which `share` of the counted values lie (nearest rank), or None with nothing counted."""
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(round(total * share, 6)))  # rounded first: 100 * 0.95 is 95.00000000000001
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return float(max(counts))


def success_rate(by_state: Mapping[str, int]) -> float | None:
    """Succeeded among the refunds that are final (failed and rejected count against)."""
    final = sum(by_state.get(state, 0) for state in ("succeeded", "failed", "rejected"))
    return None if not final else by_state.get("succeeded", 0) / final


def bucket_starts(since: float, until: float, bucket_seconds: float) -> Sequence[float]:
    count = max(1, math.ceil((until - since) / bucket_seconds))
    return [since + i * bucket_seconds for i in range(count)]
