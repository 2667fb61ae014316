"""The store's logic in portable SQL, shared by the SQLite and PostgreSQL backends.

Queries use `$1`-style placeholders (asyncpg's; the SQLite backend rewrites them to `?1`). A backend
supplies a `Dialect` and two context managers: a write transaction and a read connection.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import itertools
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Protocol, TypeVar

from ..channels.base import ReferenceMaker
from ..models import (
    Batch,
    BatchDetail,
    BatchState,
    DetailResult,
    Refund,
    RefundRequest,
    RefundState,
    ReportState,
)
from ..money import CENT
from . import finding, journal, shapes, tally
from .base import (
    EXCEEDS_PAID_AMOUNT,
    AcceptResult,
    Anomaly,
    ApprovalQueue,
    BatchOverview,
    Cause,
    JournalEntry,
    PendingWork,
    RecordedResults,
    RefundFilter,
    RefundPage,
    RefundStore,
    StateChange,
    StateChanges,
    StoreUnavailable,
    Summary,
)
from .plugin_data import PluginDataSql

Row = Mapping[str, Any]
T = TypeVar("T")
Decision = Callable[[Row], "tuple[RefundState, str | None] | None"]


class Tx(Protocol):
    """The few calls the shared logic needs from a connection inside a transaction."""

    async def fetch(self, sql: str, *args: object) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...

    async def execute(self, sql: str, *args: object) -> None: ...


@dataclass(frozen=True)
class Dialect:
    serial_pk: str  # the auto-increment primary key column type
    id_type: str
    skip_locked: str  # appended to SELECTs that claim rows, so instances never claim the same row
    account_lock_sql: str | None  # a transaction-scoped lock on a text key (an account, a trade) across instances
    for_update: str = ""  # appended to a SELECT of a row about to change, so concurrent changes take turns


def to_fen(amount: Decimal) -> int:
    """Exact integer fen; refuses anything that is not a whole number of fen."""
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"amount {amount} has more than 2 decimals")
    return int(fen)


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(CENT)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _placeholders(values: Sequence[object], start: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + len(values)))


def _padded(values: Sequence[T]) -> list[T]:
    """`values` for an IN list, its last repeated up to the next power of two (a repeat changes nothing there), so
    that a list of any length is one of a dozen statements. Each statement is prepared once and kept by the
    connection (STATEMENT_CACHE on SQLite, asyncpg's cache on PostgreSQL), one over a thousand values some 200 KB:
    with a statement per length, `serve` held hundreds of MB after 100,000 refunds (docs/performance.md)."""
    return [*values, *itertools.repeat(values[-1], shapes.padding(len(values)))] if values else []


def migrations() -> list[tuple[int, str]]:
    """(version, SQL template) for every file in store/migrations, in order."""
    folder = resources.files("refund_adapter.store") / "migrations"
    found = [(int(entry.name.split("_", 1)[0]), entry.read_text("utf-8"))
             for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted(found)


# Each trade's first waiting refund of an account, oldest first: a trade at most once per batch. Read in id
# order through refunds_by_state (state, report_state, alipay_account, id) and stopped at the limit (a waiting
# refund's report_state is always 'none': it says so to use the index); each candidate's "no earlier waiting
# refund of its trade" is one probe of refunds_by_trade (trade_no, alipay_account, id). So a batch costs the
# same whatever the account's history or backlog (0003, 0004, 0007; tests/store/test_indexes.py pins the plan).
BATCH_CANDIDATES = """SELECT id FROM refunds AS r WHERE state = 'received' AND report_state = 'none'
                        AND alipay_account = $1
                        AND NOT EXISTS (SELECT 1 FROM refunds AS earlier
                                        WHERE earlier.alipay_account = r.alipay_account
                                          AND earlier.trade_no = r.trade_no AND earlier.id < r.id
                                          AND earlier.state = 'received')
                      ORDER BY id LIMIT $2"""
# The candidates, claimed by id: point lookups in refunds_by_state, which holds every column of the WHERE (without
# report_state the planner would scan the account's whole backlog in that index instead).
CLAIM_FOR_BATCH = """UPDATE refunds SET state = 'batched', batch_id = $1, updated_at = $2
                     WHERE state = 'received' AND report_state = 'none' AND alipay_account = $3 AND id IN ({ids})
                     RETURNING id"""
# The backlog per account, read from refunds_by_state in account order like BATCH_CANDIDATES (0004).
PENDING_WORK = """SELECT alipay_account, COUNT(*) AS n, MIN(created_at) AS oldest FROM refunds
                  WHERE state = 'received' AND report_state = 'none' GROUP BY alipay_account"""
# Refunds by (state, report_state): one pass over the covering index refunds_by_state, never the table, so
# /-/stats and /metrics stay cheap however many refunds are stored (0003, 0004).
COUNT_REFUNDS = "SELECT state, report_state, COUNT(*) AS n FROM refunds GROUP BY state, report_state"
# What waits for an operator's approval, from the partial index batches_awaiting_approval (0008) and each batch's
# refunds by refunds_by_batch.
AWAITING_TOTAL = """SELECT COUNT(DISTINCT b.id) AS n, MIN(b.created_at) AS oldest, SUM(r.amount_fen) AS fen
                    FROM batches AS b JOIN refunds AS r ON r.batch_id = b.id
                    WHERE b.state = 'awaiting_approval' AND r.state = 'batched' {accounts}"""
# Refunds flagged for review: the few entries of the partial index refunds_in_review (0005), never the table.
COUNT_IN_REVIEW = "SELECT COUNT(*) AS n FROM refunds WHERE review IS NOT NULL"
_INSERT_COLUMNS = ("platform", "shop", "platform_refund_id", "order_id", "trade_no", "amount_fen", "currency",
                   "reason", "alipay_account", "paid_amount_fen", "context", "state", "code", "report_state",
                   "report_next_at", "created_at", "updated_at")
_CONTEXT_JSON = json.JSONEncoder(sort_keys=True)  # built once: json.dumps(..., sort_keys=True) builds one per call
# (state, report_state) of a new refund: waiting for a batch, or rejected at intake (its code says why) with its
# report due at once.
_ACCEPTED = (RefundState.RECEIVED, ReportState.NONE)
_REJECTED = (RefundState.REJECTED, ReportState.PENDING)
# A refund in a batch that has no result yet.
_UNRESOLVED = "state IN ('batched', 'submitted', 'unknown')"
MAX_REVIEW_REASON = 500  # characters of a review reason kept: what Alipay sent is echoed into it
# Batches' refunds by state, from refunds_by_batch (batch_id, state) alone (0007).
COUNT_BY_BATCH = "SELECT batch_id, state, COUNT(*) AS n FROM refunds WHERE batch_id IN ({ids}) GROUP BY batch_id, state"
# Ids a page whose filters no index serves reads at most (about 30 ms on SQLite; bench/admin.py), and how far
# a refund's id order may lag its created_at (group commit, instances on several clocks).
SCAN_IDS = 100_000
CLOCK_SKEW_SECONDS = 300.0
MAX_JOURNAL = 1000  # events of one journal read at most (a refund has a handful; a batch one per notify, query)
_INSERT_CHUNK = 500  # rows per INSERT: 17 parameters each stays far below either backend's limit
# Refunds changed per transaction by an operator's bulk action (retrying dead letters): SQLite runs statements in
# line on the event loop, and a chunk of 1000 holds it for a few milliseconds (bench/stalls.py).
BULK_CHUNK = 1000
READ_CHUNK = 200  # rows turned into models per turn of the event loop when reading a long list
MAX_ID = 2**63  # ids are 64-bit: a larger one names no refund
# The next dead letters in id order, from the partial index refunds_dead_letters (0006).
DEAD_LETTERS_AFTER = "SELECT id FROM refunds WHERE report_state = 'dead' AND id > $1 ORDER BY id LIMIT $2"


@dataclass(frozen=True)
class _NewRow:
    """A new refund as it will be inserted, with its verdict (`rejection`: why it is REJECTED, None: RECEIVED)."""

    request: RefundRequest
    rejection: str | None
    values: tuple[object, ...]

    def refund(self, refund_id: int, created_at: datetime) -> Refund:
        state, report_state = _ACCEPTED if self.rejection is None else _REJECTED
        return Refund(
            id=refund_id, request=self.request, state=state, code=self.rejection, batch_id=None, batch_reference=None,
            report_state=report_state, created_at=created_at, updated_at=created_at,
        )


def _new_rows(requests: Sequence[RefundRequest], spent: dict[tuple[str, str], int], now: float) -> list[_NewRow]:
    """Each request's row in order: REJECTED (and its report queued) when intake rejected it or it would take its
    trade's refunds past the paid amount, counting the ones before it; RECEIVED otherwise."""
    rows = []
    for request in requests:
        amount, trade = to_fen(request.amount), (request.alipay_account, request.trade_no)
        paid = to_fen(request.paid_amount) if request.paid_amount is not None else None
        rejection = request.rejection
        if rejection is None and paid is not None and spent.get(trade, 0) + amount > paid:
            rejection = EXCEEDS_PAID_AMOUNT
        if rejection is None:
            spent[trade] = spent.get(trade, 0) + amount
        state, report_state = _ACCEPTED if rejection is None else _REJECTED
        values = (request.platform, request.shop, request.platform_refund_id, request.order_id, request.trade_no,
                  amount, request.currency, request.reason, request.alipay_account, paid,
                  _CONTEXT_JSON.encode(dict(request.context)), state.value, rejection, report_state.value,
                  None if rejection is None else now, now, now)  # a rejection's report is due at once
        rows.append(_NewRow(request, rejection, values))
    return rows


@functools.lru_cache(maxsize=64)
def _values(rows: int) -> str:
    """`($1, ..., $17), ($18, ...)`: the VALUES of a multi-row insert of `rows` refunds."""
    width = len(_INSERT_COLUMNS)
    return ", ".join("(" + _placeholders(range(width), 1 + i * width) + ")" for i in range(rows))


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


async def _let_the_loop_run() -> None:
    """Between two chunks of a long job: SQLite's statements never yield the loop, so yield it here."""
    await asyncio.sleep(0)


class SqlStore(PluginDataSql, RefundStore):
    """Everything but connecting; see the backends for how transactions are made."""

    dialect: Dialect
    _namespace: str | None = None

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction, committed when the block exits normally."""

    def bulk_transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction for work over many rows: the same as `transaction` where statements already leave
        the event loop free while they run (PostgreSQL); a backend that runs them in line runs these elsewhere."""
        return self.transaction()

    @abc.abstractmethod
    def reading(self) -> AbstractAsyncContextManager[Tx]:
        """A connection for reads that need no transaction."""

    # -- schema ---------------------------------------------------------------------------------------
    def migration_statements(self, template: str) -> list[str]:
        sql = template.replace("{serial_pk}", self.dialect.serial_pk).replace("{id_type}", self.dialect.id_type)
        lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
        return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]

    async def migrate(self, tx: Tx) -> None:
        """Apply every migration newer than the recorded schema version; caller holds a migration lock."""
        await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = await tx.fetchrow("SELECT MAX(version) AS v FROM schema_version")
        current = (row["v"] if row else None) or 0
        for version, template in migrations():
            if version <= current:
                continue
            for statement in self.migration_statements(template):
                await tx.execute(statement)
            await tx.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        ns = await tx.fetchrow("SELECT value FROM meta WHERE key = 'namespace'")
        if ns is None:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('namespace', $1)", _new_namespace())

    async def check_schema(self) -> None:
        """For a reader that must not migrate: StoreUnavailable unless the schema is the one this code knows."""
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT MAX(version) AS v FROM schema_version")
        found, expected = (row["v"] if row else None) or 0, migrations()[-1][0]
        if found != expected:
            raise StoreUnavailable(f"the store's schema is at version {found}, this refund-adapter's at {expected}: "
                                   "start `serve` of this version once to migrate it")

    async def namespace(self) -> str:
        if self._namespace is None:
            async with self.reading() as conn:
                row = await conn.fetchrow("SELECT value FROM meta WHERE key = 'namespace'")
            assert row is not None, "the store was not opened"
            self._namespace = str(row["value"])
        return self._namespace

    # -- intake ---------------------------------------------------------------------------------------
    async def accept_in(self, tx: Tx, requests: Sequence[RefundRequest], now: float) -> list[AcceptResult]:
        """Set-based, a few statements whatever the number of requests (group commit hands over many).

        Optimistic, because a key already stored (a platform sending a webhook again) is rare: every distinct key
        is inserted as new, in order, each with its verdict against its trade's paid amount. If the database
        skips one as stored, those verdicts may have counted the stored refund's amount twice, so the insert is
        rolled back to a savepoint and done again knowing which keys are stored."""
        await self._lock(tx, (f"{request.alipay_account} {request.trade_no}" for request in requests))
        keys = [request.key for request in requests]
        distinct: dict[tuple[str, str, str], RefundRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            distinct.setdefault(key, request)
        stored: dict[tuple[str, str, str], Refund] = {}
        await tx.execute("SAVEPOINT accept")
        created = await self._insert_new(tx, distinct, now)
        if len(created) < len(distinct):
            await tx.execute("ROLLBACK TO SAVEPOINT accept")
            stored = await self._stored_by_key(tx, requests)
            new = {key: request for key, request in distinct.items() if key not in stored}
            created = await self._insert_new(tx, new, now)
            if len(created) < len(new):  # another instance stored some of the same keys meanwhile
                stored.update(await self._stored_by_key(tx, [r for key, r in new.items() if key not in created]))
        await tx.execute("RELEASE SAVEPOINT accept")
        results = []
        for key, request in zip(keys, requests, strict=True):  # a key repeated is created by its first occurrence
            refund = created.pop(key, None)
            if refund is None:  # only the rare path above found stored keys: no query of its own here
                results.append(AcceptResult(stored[key], False, request.conflicts_with(stored[key].request)))
            else:
                results.append(AcceptResult(refund, True))
                stored[key] = refund
        return results

    async def _insert_new(
        self, tx: Tx, new: dict[tuple[str, str, str], RefundRequest], now: float
    ) -> dict[tuple[str, str, str], Refund]:
        """Insert `new` in order, each with its verdict; returns those inserted (the database skips a stored key)."""
        rows = _new_rows(list(new.values()), await self._spent_by_trade(tx, new.values()), now)
        ids: dict[tuple[str, str, str], int] = {}
        for chunk in _chunks(rows, _INSERT_CHUNK):
            for row in await tx.fetch(
                f"""INSERT INTO refunds ({", ".join(_INSERT_COLUMNS)}) VALUES {_values(len(chunk))}
                    ON CONFLICT (platform, shop, platform_refund_id) DO NOTHING
                    RETURNING id, platform, shop, platform_refund_id""",
                *itertools.chain.from_iterable(new_row.values for new_row in chunk),
            ):
                ids[(row["platform"], row["shop"], row["platform_refund_id"])] = int(row["id"])
        # A refund refused at intake (rare) says why in its journal (an accepted one needs no row: its created_at is
        # that event) and is counted final; intake writes nothing else for the operator.
        rejected = [(ids[key], new_row) for key, new_row in zip(new, rows, strict=True)
                    if new_row.rejection is not None and key in ids]
        if rejected:
            await journal.refund_events_each(tx, [(refund_id, {"code": row.rejection, "cause": "refused at intake"})
                                                  for refund_id, row in rejected], now, "rejected")
            await tally.count_final(tx, [dict(zip(_INSERT_COLUMNS, row.values, strict=True)) for _, row in rejected])
        created_at = _ts(now)
        return {key: new_row.refund(ids[key], created_at) for key, new_row in zip(new, rows, strict=True) if key in ids}

    async def _stored_by_key(self, tx: Tx, requests: Iterable[RefundRequest]) -> dict[tuple[str, str, str], Refund]:
        """The stored refunds among the requests' keys, one indexed query per (platform, shop)."""
        ids_by_shop: dict[tuple[str, str], set[str]] = {}
        for request in requests:
            ids_by_shop.setdefault((request.platform, request.shop), set()).add(request.platform_refund_id)
        found: list[Row] = []
        for (platform, shop), refund_ids in ids_by_shop.items():
            found += await tx.fetch(
                f"""SELECT * FROM refunds WHERE platform = $1 AND shop = $2
                    AND platform_refund_id IN ({_placeholders(list(refund_ids), 3)})""",
                platform, shop, *refund_ids,
            )
        return {refund.request.key: refund for refund in await self._hydrate(tx, found)} if found else {}

    async def _spent_by_trade(self, tx: Tx, requests: Iterable[RefundRequest]) -> dict[tuple[str, str], int]:
        """Fen already refunded or on its way per (account, trade), for the trades whose paid amount is known
        (failed and rejected refunds moved no money)."""
        trades_by_account: dict[str, set[str]] = {}
        for request in requests:
            if request.paid_amount is not None:
                trades_by_account.setdefault(request.alipay_account, set()).add(request.trade_no)
        spent: dict[tuple[str, str], int] = {}
        for account, trades in trades_by_account.items():
            for row in await tx.fetch(
                f"""SELECT trade_no, SUM(amount_fen) AS spent FROM refunds
                    WHERE alipay_account = $1 AND trade_no IN ({_placeholders(list(trades), 2)})
                    AND state NOT IN ('failed', 'rejected') GROUP BY trade_no""",
                account, *trades,
            ):
                spent[(account, row["trade_no"])] = int(row["spent"])
        return spent

    # -- batching -------------------------------------------------------------------------------------
    async def pending_work(self) -> list[PendingWork]:
        async with self.reading() as conn:
            rows = await conn.fetch(PENDING_WORK)
        return [PendingWork(r["alipay_account"], int(r["n"]), float(r["oldest"])) for r in rows]

    async def create_batch(
        self, account: str, max_details: int, references: ReferenceMaker, now: float, *,
        awaiting_approval: bool = False,
    ) -> Batch | None:
        async with self.bulk_transaction() as tx:
            await self._lock(tx, [account])
            candidates = await tx.fetch(BATCH_CANDIDATES, account, max_details)
            if not candidates:
                return None
            state = BatchState.AWAITING_APPROVAL if awaiting_approval else BatchState.PENDING
            batch_id = await self._new_batch(tx, account, references, now, state)
            ids = _padded([int(c["id"]) for c in candidates])
            claimed = await tx.fetch(CLAIM_FOR_BATCH.format(ids=_placeholders(ids, 4)), batch_id, now, account, *ids)
            if not claimed:
                await tx.execute("DELETE FROM batches WHERE id = $1", batch_id)
                return None
            batch = await self._batch_in(tx, batch_id)
            await journal.refund_events(tx, [int(row["id"]) for row in claimed], now, "batched",
                                        {"batch_id": batch_id, "reference": batch.reference})
            return batch

    async def _new_batch(self, tx: Tx, account: str, references: ReferenceMaker, now: float,
                         state: BatchState = BatchState.PENDING) -> int:
        """A new batch row; its reference (made by the channel) derives from its id, so a retry can never mint a
        second one."""
        row = await tx.fetchrow(
            """INSERT INTO batches (account, batch_no, state, created_at, updated_at)
               VALUES ($1, $2, $4, $3, $3) RETURNING id""",
            account, "new-" + secrets.token_hex(12), now, state.value,
        )
        assert row is not None
        batch_id = int(row["id"])
        reference = references(await self._namespace_in(tx), batch_id)
        await tx.execute("UPDATE batches SET batch_no = $1 WHERE id = $2", reference, batch_id)
        return batch_id

    async def _lock(self, tx: Tx, keys: Iterable[str]) -> None:
        """Serialise transactions on each key across instances; in sorted order, so two never deadlock."""
        if self.dialect.account_lock_sql:
            for key in sorted(set(keys)):
                await tx.execute(self.dialect.account_lock_sql, key)

    async def _namespace_in(self, tx: Tx) -> str:
        row = await tx.fetchrow("SELECT value FROM meta WHERE key = 'namespace'")
        assert row is not None
        return str(row["value"])

    # -- approval by an operator ----------------------------------------------------------------------
    async def approval_queue(self, limit: int = 100, *, accounts: Sequence[str] | None = None) -> ApprovalQueue:
        names = list(accounts) if accounts is not None else []

        def of_accounts(first: int) -> str:
            """The accounts' filter, its placeholders from `$first`."""
            if accounts is None:
                return ""
            return f"AND b.account IN ({_placeholders(names, first)})" if names else "AND 1 = 0"

        async with self.reading() as conn:  # batches_awaiting_approval (0008): the waiting rows only
            rows = await conn.fetch(f"""SELECT b.*, b.batch_no AS reference FROM batches AS b
                                        WHERE b.state = 'awaiting_approval' {of_accounts(2)}
                                        ORDER BY b.id LIMIT $1""", limit, *names)
            total = await conn.fetchrow(AWAITING_TOTAL.format(accounts=of_accounts(1)), *names)
            batches = [await self._batch_of(conn, row) for row in rows]
        assert total is not None
        return ApprovalQueue(count=int(total["n"]), total=from_fen(int(total["fen"] or 0)),
                             oldest_created_at=None if total["oldest"] is None else _ts(float(total["oldest"])),
                             batches=batches)

    async def _awaiting_on(self, tx: Tx, batch_id: int, references: ReferenceMaker, now: float
                           ) -> tuple[Row, bool] | None:
        """The AWAITING_APPROVAL batch's row, locked, and whether its reference is the one `references` makes now:
        changed to it when they differ and no approval left for the old one. None: not awaiting approval."""
        row = await tx.fetchrow(
            f"SELECT *, batch_no AS reference FROM batches WHERE id = $1{self.dialect.for_update}", batch_id)
        if row is None or row["state"] != BatchState.AWAITING_APPROVAL.value:
            return None
        current = references(await self._namespace_in(tx), batch_id)
        if row["reference"] == current or row["approval_link_at"] is not None:
            return row, row["reference"] == current
        moved = await tx.fetchrow(
            "UPDATE batches SET batch_no = $1, updated_at = $2 WHERE id = $3 RETURNING *, batch_no AS reference",
            current, now, batch_id)
        assert moved is not None
        await journal.batch_event(tx, batch_id, now, "redated", {
            "summary": f"{row['reference']} never reached Alipay: {current} now", "was": row["reference"],
            "reference": current})
        return moved, True

    async def issue_approval(self, batch_id: int, references: ReferenceMaker, now: float, *,
                             next_query_at: float) -> Batch | None:
        async with self.transaction() as tx:
            found = await self._awaiting_on(tx, batch_id, references, now)
            if found is None:
                return None
            row, current = found
            if not current:
                await tx.execute("UPDATE batches SET next_query_at = $1 WHERE id = $2", now, batch_id)
                await journal.batch_event(tx, batch_id, now, "approval_held", {
                    "summary": f"no approval: whether the one of {row['reference']} was used is being asked first"})
                return await self._batch_in(tx, batch_id)
            await tx.execute(
                """UPDATE batches SET approval_link_at = $1, updated_at = $1,
                       next_query_at = CASE WHEN next_query_at IS NULL OR next_query_at > $2 THEN $2
                                       ELSE next_query_at END
                   WHERE id = $3""",
                now, next_query_at, batch_id,
            )
            await journal.batch_event(tx, batch_id, now, "approval_link", {
                "summary": f"approval made for {row['reference']}", "reference": row["reference"]})
            return await self._batch_in(tx, batch_id)

    async def release_for_submit(self, batch_id: int, references: ReferenceMaker, now: float) -> Batch | None:
        async with self.transaction() as tx:
            found = await self._awaiting_on(tx, batch_id, references, now)
            if found is None or not found[1]:
                return None
            await tx.execute(
                """UPDATE batches SET state = 'pending', lease_until = NULL, next_query_at = NULL, updated_at = $1
                   WHERE id = $2""",
                now, batch_id,
            )
            await journal.batch_event(tx, batch_id, now, "released", {
                "state": BatchState.PENDING.value,
                "summary": f"its account sends without approval now: {found[0]['reference']} to be sent"})
            return await self._batch_in(tx, batch_id)

    async def approval_expired(self, batch_id: int, now: float, *, cause: Cause) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                """UPDATE batches SET approval_link_at = NULL, next_query_at = NULL,
                       query_attempts = query_attempts + 1, updated_at = $1
                   WHERE id = $2 AND state = 'awaiting_approval'""",
                now, batch_id,
            )
            await journal.batch_event(tx, batch_id, now, cause.kind, {"summary": cause.summary, **cause.detail})

    async def claim_batch_to_submit(self, now: float, lease_seconds: float) -> Batch | None:
        async with self.bulk_transaction() as tx:
            row = await tx.fetchrow(
                f"""SELECT id FROM batches
                    WHERE (state = 'pending' AND (lease_until IS NULL OR lease_until <= $1))
                       OR (state = 'sending' AND lease_until <= $1)
                    ORDER BY id LIMIT 1{self.dialect.skip_locked}""",
                now,
            )
            if row is None:
                return None
            await tx.execute(
                """UPDATE batches SET state = 'sending', submit_attempts = submit_attempts + 1,
                       lease_until = $1, updated_at = $2, sent_at = COALESCE(sent_at, $2) WHERE id = $3""",
                now + lease_seconds, now, row["id"],
            )
            return await self._batch_in(tx, int(row["id"]))

    async def set_batch_state(
        self,
        batch_id: int,
        state: BatchState,
        now: float,
        *,
        code: str | None = None,
        next_query_at: float | None = None,
        retry_at: float | None = None,
        cause: Cause | None = None,
    ) -> Sequence[StateChange]:
        cause = cause or Cause("state", f"batch {state.value}")
        async with self.bulk_transaction() as tx:
            batch_moved = await tx.fetch(
                # A completed batch stays completed: a late submit answer must not reopen it.
                """UPDATE batches SET state = $1, code = COALESCE($2, code), next_query_at = $3,
                       lease_until = $4, updated_at = $5,
                       acknowledged_at = CASE WHEN $1 = 'submitted' THEN COALESCE(acknowledged_at, $5)
                                         ELSE acknowledged_at END
                   WHERE id = $6 AND state <> 'completed' RETURNING id""",
                state.value, code, next_query_at, retry_at, now, batch_id,
            )
            await journal.batch_event(tx, batch_id, now, cause.kind, {
                "state": state.value if batch_moved else None, "code": code, "summary": cause.summary,
                **cause.detail})
            target = {
                BatchState.SUBMITTED: RefundState.SUBMITTED,
                BatchState.UNKNOWN: RefundState.UNKNOWN,
                BatchState.REJECTED: RefundState.FAILED,
                BatchState.ABANDONED: RefundState.RECEIVED,
            }.get(state)
            if target is None:
                return []
            moved = await self._move_unresolved(tx, batch_id, lambda _row: (target, code), now)
            await moved.journal(tx, now, cause.kind, cause.summary)
        return moved.changes()

    async def remove_from_batch(
        self, batch_id: int, refund_ids: Sequence[int], code: str, now: float
    ) -> Sequence[StateChange]:
        if not refund_ids:
            return []
        async with self.bulk_transaction() as tx:
            if await self._sending_account(tx, batch_id) is None:
                return []
            old_states = {
                int(row["id"]): RefundState(row["state"])
                for row in await tx.fetch(
                    f"""SELECT id, state FROM refunds WHERE batch_id = $1 AND {_UNRESOLVED}
                        AND id IN ({_placeholders(_padded(refund_ids), 2)})""",
                    batch_id, *_padded(refund_ids),
                )
            }
            if not old_states:
                return []  # the batch is left as it was
            removed = await tx.fetch(
                f"""UPDATE refunds SET state = 'rejected', code = $1, batch_id = NULL, updated_at = $2,
                        report_state = 'pending', report_next_at = $2
                    WHERE id IN ({_placeholders(_padded(list(old_states)), 3)}) RETURNING *""",
                code, now, *_padded(list(old_states)),
            )
            left = await tx.fetchrow("SELECT COUNT(*) AS n FROM refunds WHERE batch_id = $1", batch_id)
            if left is not None and int(left["n"]) > 0:  # the rest is sent at once; this claim sent nothing
                await tx.execute(
                    """UPDATE batches SET state = 'pending', lease_until = NULL, updated_at = $1,
                           submit_attempts = submit_attempts - 1 WHERE id = $2""",
                    now, batch_id,
                )
            else:
                await tx.execute(
                    """UPDATE batches SET state = 'rejected', code = $1, lease_until = NULL, updated_at = $2
                       WHERE id = $3""",
                    code, now, batch_id,
                )
            moved = _Moved(None, sorted(removed, key=lambda row: int(row["id"])), old_states)
            await tally.count_final(tx, removed)
            await journal.batch_event(tx, batch_id, now, "details_removed",
                                      {"refund_ids": list(old_states), "code": code})
            await moved.journal(tx, now, "rejected", f"not sendable in batch {batch_id}: rejected locally")
        return moved.changes()

    async def split_batch(
        self, batch_id: int, references: ReferenceMaker, now: float, *, code: str
    ) -> list[Batch]:
        async with self.bulk_transaction() as tx:
            account = await self._sending_account(tx, batch_id)
            if account is None:
                return []
            rows = await tx.fetch(f"SELECT id FROM refunds WHERE batch_id = $1 AND {_UNRESOLVED} ORDER BY id", batch_id)
            ids = [int(row["id"]) for row in rows]
            if len(ids) < 2:
                return []
            await tx.execute(
                """UPDATE batches SET state = 'abandoned', code = $1, lease_until = NULL, next_query_at = NULL,
                       updated_at = $2 WHERE id = $3""",
                code, now, batch_id,
            )
            halves = []
            for half in (ids[: len(ids) // 2], ids[len(ids) // 2 :]):  # each refund keeps its state
                half_id = await self._new_batch(tx, account, references, now)
                padded = _padded(half)
                await tx.execute(
                    f"UPDATE refunds SET batch_id = $1 WHERE id IN ({_placeholders(padded, 2)})", half_id, *padded
                )
                halves.append(await self._batch_in(tx, half_id))
                await journal.refund_events(tx, half, now, "batched", {"batch_id": half_id,
                    "reference": halves[-1].reference, "cause": f"batch {batch_id} split ({code})"})
                await journal.batch_event(tx, half_id, now, "created", {"split_from": batch_id})
            await journal.batch_event(tx, batch_id, now, "split", {
                "code": code, "into": [half.reference for half in halves]})
            return halves

    async def _sending_account(self, tx: Tx, batch_id: int) -> str | None:
        """The account of a batch being sent, its row locked for the change; None when it is not SENDING."""
        row = await tx.fetchrow(f"SELECT account, state FROM batches WHERE id = $1{self.dialect.for_update}", batch_id)
        return None if row is None or row["state"] != BatchState.SENDING.value else str(row["account"])

    async def _move_unresolved(self, tx: Tx, batch_id: int, decide: Decision, now: float) -> _Moved:
        """Apply `decide(row) -> (state, code) | None` to each unresolved refund of a batch; `row` holds the
        refund's id, state and trade_no (all a decision needs: the full rows come back from the UPDATE). Makes no
        models: the writer is held for the SQL alone (`_Moved.changes()` makes them after the commit)."""
        rows = await tx.fetch(
            """SELECT id, state, trade_no FROM refunds
               WHERE batch_id = $1 AND state IN ('batched', 'submitted', 'unknown') ORDER BY id""",
            batch_id,
        )
        batch = await tx.fetchrow("SELECT batch_no AS reference FROM batches WHERE id = $1", batch_id)
        moved = _Moved(None if batch is None else str(batch["reference"]))
        groups: dict[tuple[RefundState, str | None], list[int]] = {}
        for row in rows:
            decision = decide(row)
            if decision is not None and decision[0].value != row["state"]:
                moved.old_states[int(row["id"])] = RefundState(row["state"])
                groups.setdefault(decision, []).append(int(row["id"]))
        for (new_state, code), moving in groups.items():  # one statement per outcome, not per refund
            ids = _padded(moving)
            updated = await tx.fetch(
                f"""UPDATE refunds SET state = $1, code = $2, updated_at = $3,
                        report_state = CASE WHEN $4 THEN 'pending' ELSE report_state END,
                        report_next_at = CASE WHEN $4 THEN $3 ELSE report_next_at END
                    WHERE id IN ({_placeholders(ids, 5)}) RETURNING *""",
                new_state.value, code, now, new_state.is_final, *ids,
            )
            moved.rows += updated
            if new_state.is_final:
                await tally.count_final(tx, updated)
        moved.rows.sort(key=lambda row: int(row["id"]))
        return moved

    async def record_results(
        self, batch_id: int, results: Sequence[DetailResult], now: float, *, message_id: str | None, kind: str
    ) -> RecordedResults:
        by_trade = {result.trade_no: result for result in results}
        async with self.bulk_transaction() as tx:
            # The batch row first, as set_batch_state does: one batch's outcomes apply one after the other.
            batch = await tx.fetchrow(
                f"SELECT batch_no AS reference FROM batches WHERE id = $1{self.dialect.for_update}", batch_id
            )
            assert batch is not None
            if message_id is not None:
                await tx.execute(
                    """INSERT INTO notifies (batch_no, notify_id, kind, received_at) VALUES ($1, $2, $3, $4)
                       ON CONFLICT DO NOTHING""",
                    batch["reference"], message_id, kind, now,
                )
                await tx.execute("UPDATE batches SET notified_at = COALESCE(notified_at, $1) WHERE id = $2",
                                 now, batch_id)
            if results:  # Alipay has the batch: one waiting for approval was approved
                await tx.execute(
                    """UPDATE batches SET state = 'submitted', acknowledged_at = COALESCE(acknowledged_at, $1)
                       WHERE id = $2 AND state = 'awaiting_approval'""",
                    now, batch_id,
                )

            anomalies = await self._flag_contradictions(tx, batch_id, by_trade, f"{kind} {message_id or ''}".strip())
            contradicted = {anomaly.trade_no for anomaly in anomalies}

            def decide(row: Row) -> tuple[RefundState, str | None] | None:
                result = by_trade.get(row["trade_no"])
                if result is None or result.trade_no in contradicted:
                    return None
                return (RefundState.SUCCEEDED if result.succeeded else RefundState.FAILED), result.code

            moved = await self._move_unresolved(tx, batch_id, decide, now)
            await self._journal_results(tx, batch_id, results, moved, anomalies, now, message_id=message_id,
                                        kind=kind)
            left = await tx.fetchrow(
                """SELECT COUNT(*) AS n FROM refunds
                   WHERE batch_id = $1 AND state IN ('batched', 'submitted', 'unknown')""",
                batch_id,
            )
            if left is not None and int(left["n"]) == 0:
                await tx.execute(
                    """UPDATE batches SET state = 'completed', next_query_at = NULL, lease_until = NULL,
                           updated_at = $1 WHERE id = $2""",
                    now, batch_id,
                )
        return RecordedResults(moved.changes(), anomalies)

    async def _journal_results(
        self, tx: Tx, batch_id: int, results: Sequence[DetailResult], moved: _Moved,
        anomalies: Sequence[Anomaly], now: float, *, message_id: str | None, kind: str,
    ) -> None:
        """The batch's journal keeps what was received; each refund it moved or flagged, its own line."""
        source = f"{kind} notify {message_id}" if message_id is not None else kind
        lines = {result.trade_no: result.line or f"{result.trade_no}^{result.amount}^{result.code}"
                 for result in results}
        await journal.batch_event(tx, batch_id, now, kind, {
            "message_id": message_id, "verified": message_id is not None, "results": list(lines.values()),
            "changes": len(moved.rows), "review": [anomaly.reason for anomaly in anomalies]})
        await journal.refund_events_each(tx, [
            (int(row["id"]), {**moved.detail(row, source), "line": lines.get(row["trade_no"])})
            for row in moved.rows], now, "result")
        await journal.refund_events_each(
            tx, [(anomaly.refund_id, {"reason": anomaly.reason}) for anomaly in anomalies], now, "review")

    async def record_batch_event(self, batch_id: int, kind: str, detail: Mapping[str, Any], now: float) -> None:
        """Up to MAX_JOURNAL events a batch: a flood of forged notifies naming one batch costs a bounded number
        of writes (and the count is read off the writer)."""
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT COUNT(*) AS n FROM batch_events WHERE batch_id = $1", batch_id)
        if row is not None and int(row["n"]) >= MAX_JOURNAL:
            return
        async with self.transaction() as tx:
            await journal.batch_event(tx, batch_id, now, kind, detail)

    async def _flag_contradictions(
        self, tx: Tx, batch_id: int, by_trade: Mapping[str, DetailResult], source: str
    ) -> list[Anomaly]:
        """Flag for review each refund of the batch whose verdict contradicts its record; keeps a first reason."""
        if not by_trade:
            return []
        trades = _padded(list(by_trade))
        rows = await tx.fetch(
            f"""SELECT id, state, code, trade_no, amount_fen FROM refunds
                WHERE batch_id = $1 AND trade_no IN ({_placeholders(trades, 2)}) ORDER BY id""",
            batch_id, *trades,
        )
        anomalies = []
        for row in rows:
            result = by_trade[row["trade_no"]]
            why = result.contradiction(RefundState(row["state"]), row["code"], from_fen(int(row["amount_fen"])))
            if why is not None:
                anomaly = Anomaly(int(row["id"]), result.trade_no, f"{source}: {why}"[:MAX_REVIEW_REASON])
                await tx.execute("UPDATE refunds SET review = COALESCE(review, $1) WHERE id = $2",
                                 anomaly.reason, anomaly.refund_id)
                anomalies.append(anomaly)
        return anomalies

    async def notify_seen(self, reference: str, message_id: str, kind: str) -> bool:
        async with self.reading() as conn:
            row = await conn.fetchrow(
                "SELECT 1 AS seen FROM notifies WHERE batch_no = $1 AND notify_id = $2 AND kind = $3",
                reference, message_id, kind,
            )
        return row is not None

    # -- reconciliation -------------------------------------------------------------------------------
    async def claim_batches_to_query(self, now: float, limit: int, lease_seconds: float) -> list[Batch]:
        async with self.transaction() as tx:
            rows = await tx.fetch(
                f"""SELECT id FROM batches WHERE state IN ('submitted', 'unknown', 'awaiting_approval')
                    AND next_query_at <= $1
                    ORDER BY next_query_at LIMIT $2{self.dialect.skip_locked}""",
                now, limit,
            )
            ids = [int(r["id"]) for r in rows]
            if not ids:
                return []
            padded = _padded(ids)
            await tx.execute(
                f"UPDATE batches SET next_query_at = $1 WHERE id IN ({_placeholders(padded, 2)})",
                now + lease_seconds, *padded,
            )
        # Read after the commit, on the reading connection: up to `limit` batches of 1000 details each would hold
        # the writer (and, on SQLite, the event loop) for as long as reading them takes.
        async with self.reading() as conn:
            return [await self._batch_in(conn, batch_id) for batch_id in ids]

    async def schedule_query(self, batch_id: int, next_query_at: float, now: float, *, cause: Cause | None = None
                             ) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                """UPDATE batches SET query_attempts = query_attempts + 1, next_query_at = $1, updated_at = $2
                   WHERE id = $3""",
                next_query_at, now, batch_id,
            )
            if cause is not None:
                await journal.batch_event(tx, batch_id, now, cause.kind,
                                          {"summary": cause.summary, "next_query_at": next_query_at, **cause.detail})

    async def requery_batch(self, batch_id: int, now: float) -> Batch | None:
        async with self.transaction() as tx:
            row = await tx.fetchrow(f"SELECT state FROM batches WHERE id = $1{self.dialect.for_update}", batch_id)
            if row is None or row["state"] not in ("submitted", "unknown", "review"):
                return None
            state = row["state"]
            if state == "review":
                unknown = await tx.fetchrow(
                    "SELECT 1 AS found FROM refunds WHERE batch_id = $1 AND state = 'unknown' LIMIT 1", batch_id)
                state = "unknown" if unknown is not None else "submitted"
            await tx.execute(
                "UPDATE batches SET state = $1, next_query_at = $2, lease_until = NULL, updated_at = $2 WHERE id = $3",
                state, now, batch_id,
            )
            await journal.batch_event(tx, batch_id, now, "operator_requery", {"was": row["state"], "state": state})
            return await self._batch_in(tx, batch_id)

    # -- reporting ------------------------------------------------------------------------------------
    async def claim_reports(self, now: float, limit: int, lease_seconds: float) -> list[Refund]:
        async with self.transaction() as tx:
            rows = await tx.fetch(
                f"""SELECT id FROM refunds WHERE report_state = 'pending' AND report_next_at <= $1
                    ORDER BY report_next_at LIMIT $2{self.dialect.skip_locked}""",
                now, limit,
            )
            ids = _padded([int(r["id"]) for r in rows])
            if not ids:
                return []
            claimed = await tx.fetch(
                f"""UPDATE refunds SET report_next_at = $1, report_attempts = report_attempts + 1
                    WHERE id IN ({_placeholders(ids, 2)}) RETURNING *""",
                now + lease_seconds, *ids,
            )
            claimed = sorted(claimed, key=lambda r: r["id"])
            references = await self._batch_references(tx, claimed)
        return [_refund(row, references.get(row["batch_id"])) for row in claimed]  # made with the writer free

    async def report_delivered(self, refund_ids: Sequence[int], now: float) -> None:
        if not refund_ids:
            return
        ids = _padded(refund_ids)
        async with self.transaction() as tx:
            rows = await tx.fetch(
                f"""UPDATE refunds SET report_state = 'delivered', report_next_at = NULL, report_error = NULL,
                        reported_at = $1
                    WHERE report_state = 'pending' AND id IN ({_placeholders(ids, 2)})
                    RETURNING id, report_attempts, created_at""",
                now, *ids,
            )
            await tally.count_reports(tx, [float(row["created_at"]) for row in rows], now)
            by_attempt: dict[int, list[int]] = {}  # most share their attempt, and so one encoding of the event
            for row in rows:
                by_attempt.setdefault(int(row["report_attempts"]), []).append(int(row["id"]))
            for attempt, delivered in by_attempt.items():
                await journal.refund_events(tx, delivered, now, "report", {"attempt": attempt, "status": "delivered"})

    async def report_failed(self, refund_id: int, error: str, *, next_at: float | None, now: float) -> None:
        async with self.transaction() as tx:
            row = await tx.fetchrow(
                """UPDATE refunds SET report_state = $1, report_next_at = $2, report_error = $3
                   WHERE id = $4 AND report_state = 'pending' RETURNING report_attempts""",
                "pending" if next_at is not None else "dead", next_at, error[:500], refund_id,
            )
            if row is not None:
                status = "retry" if next_at is not None else "dead"
                await journal.refund_events(tx, [refund_id], now, "report", {
                    "attempt": int(row["report_attempts"]), "status": status, "reason": error, "next_at": next_at})

    async def retry_dead_letters(self, now: float, refund_ids: Sequence[int] | None = None) -> int:
        """In chunks of BULK_CHUNK refunds, each its own transaction, with the event loop let run in between:
        a million dead letters, or a list of a hundred thousand ids, never hold the loop (nor the writer)."""
        requeued = 0
        if refund_ids is not None:  # an id repeated in a later chunk is no longer dead there: counted once
            for chunk in _chunks(refund_ids, BULK_CHUNK):
                async with self.bulk_transaction() as tx:
                    requeued += await self._requeue_dead(tx, now, [i for i in chunk if 0 < i < MAX_ID])
                await _let_the_loop_run()
            return requeued
        after = 0
        while True:
            async with self.bulk_transaction() as tx:
                ids = [int(row["id"]) for row in await tx.fetch(DEAD_LETTERS_AFTER, after, BULK_CHUNK)]
                requeued += await self._requeue_dead(tx, now, ids)
            if len(ids) < BULK_CHUNK:
                return requeued
            after = ids[-1]
            await _let_the_loop_run()

    async def _requeue_dead(self, tx: Tx, now: float, ids: Sequence[int]) -> int:
        """Put those of `ids` that are dead letters back in the outbox; returns how many."""
        if not ids:
            return 0
        padded = _padded(ids)
        rows = await tx.fetch(
            f"""UPDATE refunds SET report_state = 'pending', report_next_at = $1, report_attempts = 0
                WHERE report_state = 'dead' AND id IN ({_placeholders(padded, 2)}) RETURNING id""",
            now, *padded,
        )
        await journal.refund_events(tx, [int(row["id"]) for row in rows], now, "operator_retry",
                                    {"cause": "dead letter back in the outbox"})
        return len(rows)

    # -- review ---------------------------------------------------------------------------------------
    async def clear_review(self, refund_id: int, now: float) -> Refund | None:
        async with self.transaction() as tx:
            row = await tx.fetchrow("UPDATE refunds SET review = NULL WHERE id = $1 RETURNING *", refund_id)
            if row is None:
                return None
            await journal.refund_events(tx, [refund_id], now, "review_cleared", {"cause": "operator"})
            return await self._hydrate_one(tx, row)

    # -- reading --------------------------------------------------------------------------------------
    async def get_refund(self, refund_id: int) -> Refund | None:
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT * FROM refunds WHERE id = $1", refund_id)
            return None if row is None else await self._hydrate_one(conn, row)

    async def find_refund(self, platform: str, shop: str, platform_refund_id: str) -> Refund | None:
        async with self.reading() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM refunds WHERE platform = $1 AND shop = $2 AND platform_refund_id = $3",
                platform, shop, platform_refund_id,
            )
            return None if row is None else await self._hydrate_one(conn, row)

    async def list_refunds(
        self,
        *,
        state: RefundState | None = None,
        report_state: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        batch_id: int | None = None,
        review: bool | None = None,
    ) -> list[Refund]:
        where = RefundFilter(state=state, report_state=None if report_state is None else ReportState(report_state),
                             batch_id=batch_id, review=review)
        return (await self.find_refunds(where, limit=limit, before_id=before_id)).refunds

    async def find_refunds(
        self, where: RefundFilter, *, limit: int = 100, before_id: int | None = None, after_id: int | None = None
    ) -> RefundPage:
        async with self.reading() as conn:
            batch_id = None
            if where.search is not None:
                batch = await conn.fetchrow("SELECT id FROM batches WHERE batch_no = $1", where.search)
                batch_id = None if batch is None else int(batch["id"])
            window, floor = None, 1
            if not finding.is_selective(where):  # read in id order, SCAN_IDS ids at most
                floor, ceiling = await self._id_bounds(conn, where)
                if after_id is not None:
                    low = max(after_id + 1, floor)
                    window = (low, max(low, min(ceiling, low + SCAN_IDS)))
                else:
                    high = ceiling if before_id is None else min(ceiling, before_id)
                    window = (min(high, max(floor, high - SCAN_IDS)), high)
            sql, args = finding.refund_query(where, batch_id, limit=limit, before_id=before_id, after_id=after_id,
                                             window=window)
            rows = await conn.fetch(sql, *args)
            refunds: list[Refund] = []
            for chunk in _chunks(rows[::-1] if after_id is not None else rows, READ_CHUNK):
                refunds += await self._hydrate(conn, chunk)  # a page of 1000 is tens of milliseconds of models
                await _let_the_loop_run()
        older: int | None = None
        if after_id is not None:
            older = refunds[-1].id if refunds else after_id + 1
        elif len(refunds) == limit:
            older = refunds[-1].id
        elif window is not None and window[0] > floor:
            older = window[0]  # this page read its share of ids; older ones may match
        return RefundPage(refunds, older)

    async def _id_bounds(self, conn: Tx, where: RefundFilter) -> tuple[int, int]:
        """Ids [floor, ceiling) that hold every refund the filter's dates allow. A refund's id order follows its
        created_at within CLOCK_SKEW_SECONDS, so the refund created last more than that before `created_from`
        has a smaller id than any created since, and likewise after `created_to`."""
        top = await conn.fetchrow(finding.MAX_REFUND_ID)
        floor, ceiling = 1, int(top["id"] or 0) + 1 if top is not None else 1  # ids start at 1, on both backends
        if where.created_from is not None:
            before = await conn.fetchrow(finding.LAST_BEFORE, where.created_from - CLOCK_SKEW_SECONDS)
            floor = 1 if before is None else int(before["id"]) + 1
        if where.created_to is not None:
            after = await conn.fetchrow(finding.FIRST_AT_OR_AFTER, where.created_to + CLOCK_SKEW_SECONDS)
            ceiling = ceiling if after is None else min(ceiling, int(after["id"]))
        return floor, ceiling

    async def refund_journal(self, refund_id: int) -> list[JournalEntry]:
        async with self.reading() as conn:
            return await journal.read_refund_journal(conn, refund_id, MAX_JOURNAL)

    async def batch_journal(self, batch_id: int, limit: int = MAX_JOURNAL) -> list[JournalEntry]:
        async with self.reading() as conn:
            return await journal.read_batch_journal(conn, batch_id, limit)

    async def batch_overviews(
        self, *, state: BatchState | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[BatchOverview]:
        async with self.reading() as conn:
            rows = await conn.fetch(
                """SELECT *, batch_no AS reference FROM batches WHERE (CAST($1 AS TEXT) IS NULL OR state = $1)
                   AND (CAST($3 AS BIGINT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $2""",
                state.value if state else None, limit, before_id,
            )
            if not rows:
                return []
            ids = [int(row["id"]) for row in rows]
            padded = _padded(ids)
            counted = await conn.fetch(COUNT_BY_BATCH.format(ids=_placeholders(padded, 1)), *padded)
        by_batch: dict[int, dict[str, int]] = {batch_id: {} for batch_id in ids}
        for count in counted:
            by_batch[int(count["batch_id"])][str(count["state"])] = int(count["n"])
        return [BatchOverview(_batch(row, ()), by_batch[int(row["id"])]) for row in rows]

    async def summary(self, since: float, until: float, bucket_seconds: float) -> Summary:
        since, until = tally.hour_of(since), tally.hour_of(until - 1) + tally.HOUR  # the tallies count whole hours
        async with self.reading() as conn:
            final = await conn.fetch(tally.TALLY_IN_WINDOW, since, until, int(bucket_seconds))
            unresolved = await conn.fetch(tally.UNRESOLVED_IN_WINDOW, since, until)
            reported = await conn.fetch(tally.REPORTS_IN_WINDOW, since, until)
        by_state: Counter[str] = Counter()
        refunded: Counter[str] = Counter()
        buckets: dict[int, Counter[str]] = {}
        counted = [(int(row["bucket"]), row["state"], row["account"], int(row["n"]), int(row["fen"])) for row in final]
        counted += [(int((row["created_at"] - since) // bucket_seconds), row["state"], row["alipay_account"], 1,
                     int(row["amount_fen"])) for row in unresolved]
        for bucket, state, account, n, fen in counted:
            by_state[str(state)] += n
            buckets.setdefault(bucket, Counter())[str(state)] += n
            if state == RefundState.SUCCEEDED.value:
                refunded[str(account)] += fen
        seconds = {int(row["seconds"]): int(row["n"]) for row in reported}
        return Summary(
            since=_ts(since), until=_ts(until), by_state=dict(by_state),
            success_rate=finding.success_rate(by_state),
            refunded_by_account={account: from_fen(fen) for account, fen in sorted(refunded.items())},
            reported_seconds_p50=finding.percentile(seconds, 0.5),
            reported_seconds_p95=finding.percentile(seconds, 0.95),
            series=[(_ts(start), dict(buckets.get(index, {})))
                    for index, start in enumerate(finding.bucket_starts(since, until, bucket_seconds))],
        )

    async def get_batch(self, batch_id: int) -> Batch | None:
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT id FROM batches WHERE id = $1", batch_id)
            return None if row is None else await self._batch_in(conn, batch_id)

    async def find_batch(self, reference: str) -> Batch | None:
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT id FROM batches WHERE batch_no = $1", reference)
            return None if row is None else await self._batch_in(conn, int(row["id"]))

    async def list_batches(self, *, limit: int = 100, state: BatchState | None = None, before_id: int | None = None,
                           max_details: int | None = None) -> list[Batch]:
        async with self.reading() as conn:
            # Each batch as the row that matched: reading it again by id (as this did) could find it changed
            # since (a notify completing it), and `state=submitted` answered batches that were completed.
            rows = await conn.fetch(
                """SELECT *, batch_no AS reference FROM batches WHERE (CAST($1 AS TEXT) IS NULL OR state = $1)
                   AND (CAST($3 AS BIGINT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $2""",
                state.value if state else None, limit, before_id,
            )
            batches: list[Batch] = []
            details = 0
            for row in rows:
                batches.append(await self._batch_of(conn, row))
                details += len(batches[-1].details)
                if max_details is not None and details >= max_details:
                    break
            return batches

    async def oldest_pending_report(self) -> float | None:
        async with self.reading() as conn:  # reads refunds_to_report's rows only (a partial index: the outbox)
            row = await conn.fetchrow("SELECT MIN(updated_at) AS t FROM refunds WHERE report_state = 'pending'")
        return None if row is None or row["t"] is None else float(row["t"])

    async def schema_problem(self) -> str | None:
        async with self.reading() as conn:
            row = await conn.fetchrow("SELECT MAX(version) AS v FROM schema_version")
        current, latest = (row["v"] if row else None) or 0, migrations()[-1][0]
        return None if current == latest else f"schema at version {current}, this build needs {latest}"

    async def counts(self) -> dict[str, dict[str, int]]:
        async with self.reading() as conn:
            pairs = await conn.fetch(COUNT_REFUNDS)
            batches = await conn.fetch("SELECT state, COUNT(*) AS n FROM batches GROUP BY state")
            flagged = await conn.fetchrow(COUNT_IN_REVIEW)
        refunds: Counter[str] = Counter()
        reports: Counter[str] = Counter()
        for row in pairs:
            refunds[str(row["state"])] += int(row["n"])
            reports[str(row["report_state"])] += int(row["n"])
        return {"refunds": dict(refunds), "reports": dict(reports),
                "batches": {str(r["state"]): int(r["n"]) for r in batches},
                "review": {"flagged": int(flagged["n"]) if flagged else 0}}

    # -- rows to models -------------------------------------------------------------------------------
    async def _batch_in(self, conn: Tx, batch_id: int) -> Batch:
        row = await conn.fetchrow("SELECT *, batch_no AS reference FROM batches WHERE id = $1", batch_id)
        assert row is not None
        return await self._batch_of(conn, row)

    async def _batch_of(self, conn: Tx, row: Row) -> Batch:
        details = await conn.fetch(
            """SELECT id, trade_no, amount_fen, reason, platform, shop, platform_refund_id, state FROM refunds
               WHERE batch_id = $1 ORDER BY id""", row["id"]
        )
        return _batch(row, tuple(
            BatchDetail(int(d["id"]), d["trade_no"], from_fen(int(d["amount_fen"])), d["reason"],
                        (d["platform"], d["shop"], d["platform_refund_id"]), RefundState(d["state"]).is_final)
            for d in details
        ))

    async def _hydrate_one(self, conn: Tx, row: Row) -> Refund:
        return (await self._hydrate(conn, [row]))[0]

    async def _hydrate(self, conn: Tx, rows: Sequence[Row]) -> list[Refund]:
        references = await self._batch_references(conn, rows)
        return [_refund(row, references.get(row["batch_id"])) for row in rows]

    async def _batch_references(self, conn: Tx, rows: Sequence[Row]) -> dict[int, str]:
        """The reference of each batch the refunds of `rows` are in."""
        batch_ids = _padded(sorted({int(r["batch_id"]) for r in rows if r["batch_id"] is not None}))
        if not batch_ids:
            return {}
        found = await conn.fetch(
            f"SELECT id, batch_no AS reference FROM batches WHERE id IN ({_placeholders(batch_ids, 1)})", *batch_ids,
        )
        return {int(b["id"]): b["reference"] for b in found}


def _batch(row: Row, details: tuple[BatchDetail, ...]) -> Batch:
    def at(column: str) -> datetime | None:
        return None if row[column] is None else _ts(row[column])

    return Batch(
        id=int(row["id"]),
        account=row["account"],
        reference=row["reference"],
        state=BatchState(row["state"]),
        details=details,
        created_at=_ts(row["created_at"]),
        submit_attempts=int(row["submit_attempts"]),
        query_attempts=int(row["query_attempts"]),
        code=row["code"],
        sent_at=at("sent_at"),
        acknowledged_at=at("acknowledged_at"),
        notified_at=at("notified_at"),
        approval_link_at=at("approval_link_at"),
    )


@dataclass
class _Moved:
    """What `_move_unresolved` changed, as rows: its journal is written from them while the writer is held, and
    its models made from them (lazily) once it is not."""

    reference: str | None
    rows: list[Row] = field(default_factory=list)  # each moved refund as it is now, in id order
    old_states: dict[int, RefundState] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """Whether a refund reached a final state."""
        return any(RefundState(row["state"]).is_final for row in self.rows)

    def detail(self, row: Row, cause: str) -> dict[str, object]:
        old = self.old_states[int(row["id"])]
        return {"from": old.value, "to": row["state"], "code": row["code"], "reference": self.reference,
                "cause": cause}

    async def journal(self, tx: Tx, now: float, kind: str, cause: str) -> None:
        """One event per refund; the refunds sharing a detail (most of a batch) share one encoding of it."""
        alike: dict[tuple[str, str, str | None], tuple[Row, list[int]]] = {}
        for row in self.rows:
            key = (self.old_states[int(row["id"])].value, row["state"], row["code"])
            alike.setdefault(key, (row, []))[1].append(int(row["id"]))
        for first, ids in alike.values():
            await journal.refund_events(tx, ids, now, kind, self.detail(first, cause))

    def changes(self) -> StateChanges:
        return StateChanges(self.rows, self.final,
                            lambda row: StateChange(_refund(row, self.reference), self.old_states[int(row["id"])]))


def _refund(row: Row, batch_reference: str | None) -> Refund:
    paid = row["paid_amount_fen"]
    return Refund(
        id=int(row["id"]),
        request=RefundRequest(
            platform=row["platform"],
            shop=row["shop"],
            platform_refund_id=row["platform_refund_id"],
            order_id=row["order_id"],
            trade_no=row["trade_no"],
            amount=from_fen(int(row["amount_fen"])),
            currency=row["currency"],
            reason=row["reason"],
            alipay_account=row["alipay_account"],
            paid_amount=None if paid is None else from_fen(int(paid)),
            context=json.loads(row["context"]),
        ),
        state=RefundState(row["state"]),
        code=row["code"],
        batch_id=None if row["batch_id"] is None else int(row["batch_id"]),
        batch_reference=batch_reference,
        report_state=ReportState(row["report_state"]),
        created_at=_ts(row["created_at"]),
        updated_at=_ts(row["updated_at"]),
        report_attempts=int(row["report_attempts"]),
        report_error=row["report_error"],
        review=row["review"],
    )


def _new_namespace() -> str:
    """Four base-36 characters: enough that two installs sharing one Alipay partner never collide by chance."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(4))

