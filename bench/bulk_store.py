"""A large store built in seconds for the benchmarks: refunds, batches and their journals, straight into the tables.

Going through `accept` and the engine would take hours for a million refunds; this writes the rows the engine would
have left behind, spread the way a busy install's are (bench/admin.py describes the spread). The store is opened
first so that every migration applies; then each table's indexes are dropped, the rows loaded in bulk (SQLite:
`executemany` in one transaction, without fsync; PostgreSQL: COPY) and the indexes built again from their own
definitions, as the migrations wrote them. Benchmarks only: nothing here is for a store in use.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from refund_adapter.store import store_from_url
from refund_adapter.store.tally import hour_of, rounded_seconds

PLATFORM_SHOPS = {"shopify": 12, "woocommerce": 6, "generic": 2}  # shops per platform
ACCOUNTS = ("acct-east", "acct-west", "acct-intl")  # none configured in the bench's serve: the engine stays idle
BATCH_SIZE = 500  # refunds of one account per batch
DAY = 86_400.0
# A refund's final state and its share; report states of final refunds: delivered, dead letters 1.5%.
FINAL = (("succeeded", 0.93), ("failed", 0.045), ("rejected", 0.025))
DEAD_SHARE = 0.015
CHUNK = 50_000  # refunds generated and loaded at a time (a million at once would hold over a gigabyte)
RECENT_SECONDS = 3_600.0  # refunds younger than this are still on their way (batched or submitted)
REFUND_COLUMNS = ("id", "platform", "shop", "platform_refund_id", "order_id", "trade_no", "amount_fen", "currency",
                  "reason", "alipay_account", "paid_amount_fen", "context", "state", "code", "batch_id",
                  "report_state", "report_attempts", "report_error", "report_next_at", "created_at", "updated_at",
                  "review", "reported_at")
BATCH_COLUMNS = ("id", "account", "batch_no", "state", "code", "submit_attempts", "lease_until", "query_attempts",
                 "next_query_at", "created_at", "updated_at", "sent_at", "acknowledged_at", "notified_at")
EVENT_COLUMNS = ("refund_id", "at", "kind", "detail")
BATCH_EVENT_COLUMNS = ("batch_id", "at", "kind", "detail")
TABLES = {"refunds": REFUND_COLUMNS, "batches": BATCH_COLUMNS, "refund_events": EVENT_COLUMNS,
          "batch_events": BATCH_EVENT_COLUMNS, "refund_tally": ("hour", "account", "state", "n", "fen"),
          "report_tally": ("hour", "seconds", "n")}


@dataclass(frozen=True)
class Sample:
    """Values the benchmark looks up: they exist in the store."""

    max_id: int
    trade_nos: list[str]
    order_ids: list[str]
    refund_ids: list[int]


def trade_no(index: int) -> str:
    return f"2026{index:020d}"


def order_id(index: int) -> str:
    return f"#{1_000_000 + index}"


def _shops() -> list[tuple[str, str]]:
    return [(platform, f"{platform}-shop-{n}") for platform, count in PLATFORM_SHOPS.items() for n in range(count)]


class Rows:
    """Every row of the store, generated in id order from one seed."""

    def __init__(self, refunds: int, now: float, seed: int) -> None:
        self.refunds, self.now, self.rng = refunds, now, random.Random(seed)
        self.shops = _shops()
        self.batches: dict[int, tuple[object, ...]] = {}
        self.refund_events: list[tuple[object, ...]] = []
        self.batch_events: list[tuple[object, ...]] = []
        self.final: Counter[tuple[int, str, str]] = Counter()  # the summary's tallies (store/tally.py)
        self.final_fen: Counter[tuple[int, str, str]] = Counter()
        self.reports: Counter[tuple[int, int]] = Counter()

    def _batch(self, index: int, account_index: int, created: float, recent: bool) -> int:
        batch_id = (index // (BATCH_SIZE * len(ACCOUNTS))) * len(ACCOUNTS) + account_index + 1
        if batch_id not in self.batches:
            state = "submitted" if recent else "completed"
            batch_no = f"{created:.0f}B{batch_id:010d}"
            self.batches[batch_id] = (batch_id, ACCOUNTS[account_index], batch_no, state, None, 1, None, 0, None,
                                      created, created + 5, created + 1, created + 2, None if recent else created + 60)
            request = json.dumps({"answer": "accepted", "attempt": 1, "request": {
                "batch_no": batch_no, "batch_num": str(BATCH_SIZE), "detail_data": "…" * 200,
                "service": "refund_fastpay_by_platform_nopwd"}})
            self.batch_events.append((batch_id, created + 2, "submit", request))
            if not recent:
                self.batch_events.append((batch_id, created + 60, "refund", json.dumps(
                    {"notify_id": f"n-{batch_id}", "verified": True, "results": [], "changes": BATCH_SIZE})))
        return batch_id

    def chunks(self, size: int = CHUNK) -> Iterator[dict[str, list[tuple[object, ...]]]]:
        """The batches and their events (refunds name them), then the refunds and theirs, `size` at a time."""
        first, span = self.now - 30 * DAY, 30 * DAY
        for index in range(0, self.refunds):
            created = first + span * index / self.refunds
            self._batch(index, index % len(ACCOUNTS), created, self.now - created < RECENT_SECONDS)
        yield {"batches": list(self.batches.values()), "batch_events": self.batch_events}
        for start in range(0, self.refunds, size):
            self.refund_events = []
            refunds = list(self.refund_rows(range(start, min(start + size, self.refunds))))
            yield {"refunds": refunds, "refund_events": self.refund_events}
        yield {"refund_tally": [(*key, n, self.final_fen[key]) for key, n in self.final.items()],
               "report_tally": [(*key, n) for key, n in self.reports.items()]}

    def refund_rows(self, indices: range) -> Iterator[tuple[object, ...]]:
        rng, span = self.rng, 30 * DAY
        first = self.now - span
        states = [state for state, _ in FINAL]
        weights = [share for _, share in FINAL]
        for index in indices:
            refund_id = index + 1
            created = first + span * index / self.refunds
            platform, shop = self.shops[index * 7 % len(self.shops)]
            account_index = index % len(ACCOUNTS)
            recent = self.now - created < RECENT_SECONDS
            state = ("submitted" if index % 2 else "batched") if recent else rng.choices(states, weights)[0]
            batch_id = None if state == "rejected" else self._batch(index, account_index, created, recent)
            code = {"succeeded": "SUCCESS", "failed": "TRADE_HAS_CLOSED", "rejected": "EXCEEDS_PAID_AMOUNT"}.get(state)
            final = state in ("succeeded", "failed", "rejected")
            dead = final and rng.random() < DEAD_SHARE
            report_state = ("dead" if dead else "delivered") if final else "none"
            reported = created + 60 + rng.lognormvariate(3, 1) if report_state == "delivered" else None
            updated = created + 60 if final else created
            amount = rng.randrange(100, 500_000)
            if final:
                self.final[(hour_of(created), ACCOUNTS[account_index], state)] += 1
                self.final_fen[(hour_of(created), ACCOUNTS[account_index], state)] += amount
            if reported is not None:
                self.reports[(hour_of(reported), rounded_seconds(reported - created))] += 1
            yield (refund_id, platform, shop, f"rf-{index}", order_id(index), trade_no(index), amount, "CNY",
                   "customer return", ACCOUNTS[account_index], amount, "{}", state, code, batch_id, report_state,
                   3 if dead else (1 if final else 0), "HTTP 401 bad token" if dead else None, None, created,
                   updated, None, reported)
            self._events(refund_id, created, state, batch_id, report_state, reported)

    def _events(self, refund_id: int, created: float, state: str, batch_id: int | None, report: str,
                reported: float | None) -> None:
        events = self.refund_events
        if batch_id is not None:
            events.append((refund_id, created + 1, "batched", f'{{"batch_id": {batch_id}}}'))
            events.append((refund_id, created + 2, "submit", '{"from": "batched", "to": "submitted"}'))
        if state in ("succeeded", "failed"):
            events.append((refund_id, created + 60, "result", f'{{"to": "{state}", "line": "…"}}'))
        if report == "delivered":
            events.append((refund_id, reported, "report", '{"attempt": 1, "status": "delivered"}'))
        elif report == "dead":
            events.append((refund_id, created + DAY, "report", '{"attempt": 3, "status": "dead"}'))

    def sample(self, count: int = 200) -> Sample:
        picks = [self.rng.randrange(self.refunds) for _ in range(count)]
        return Sample(self.refunds, [trade_no(i) for i in picks], [order_id(i) for i in picks], [i + 1 for i in picks])


async def build(url: str, refunds: int, now: float, seed: int = 14) -> Sample:
    """A store at `url` (empty, or created here) holding `refunds` refunds and what goes with them."""
    store = store_from_url(url)
    await store.open()
    await store.close()
    rows = Rows(refunds, now, seed)
    if urlsplit(url).scheme == "sqlite":
        _load_sqlite(urlsplit(url).path, rows)
    else:
        await _load_postgres(url, rows)
    return rows.sample()


def _load_sqlite(path: str, rows: Rows) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        indexes = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({', '.join('?' * len(TABLES))})", list(TABLES)).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for tables in rows.chunks():
            for table, values in tables.items():
                columns = TABLES[table]
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")  # no ANALYZE: the adapter never runs it, so its planner works without statistics
    finally:
        conn.close()


async def _load_postgres(url: str, rows: Rows) -> None:
    conn = await asyncpg.connect(url)
    try:
        indexes = await conn.fetch(
            """SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1::text[])
               AND indexname NOT IN (SELECT conname FROM pg_constraint)""", list(TABLES))
        async with conn.transaction():
            for index in indexes:
                await conn.execute(f"DROP INDEX {index['indexname']}")
            for tables in rows.chunks():
                for table, values in tables.items():
                    await conn.copy_records_to_table(table, records=values, columns=list(TABLES[table]))
            for index in indexes:
                await conn.execute(index["indexdef"])
            for table in ("refunds", "batches", "refund_events", "batch_events"):
                await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
        await conn.execute("ANALYZE")  # what autovacuum does soon after a load this size
    finally:
        await conn.close()
