"""Several adapter instances on one PostgreSQL database: nothing is stored, batched, claimed or moved twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TypeVar

import pytest

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, DetailResult, RefundState
from refund_adapter.store.base import EXCEEDS_PAID_AMOUNT
from refund_adapter.store.postgres import PostgresStore
from refund_adapter.store.sql import migrations

from .test_store_contract import DAY, T0, req

INSTANCES = 3
ROUNDS = 20
LEASE = 60.0

T = TypeVar("T")


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Instances that open (and so migrate) at the same moment on an empty database."""
    opened = [PostgresStore(pg_url) for _ in range(INSTANCES)]
    await asyncio.gather(*(store.open() for store in opened))
    try:
        yield opened
    finally:
        await asyncio.gather(*(store.close() for store in opened))


async def everywhere(stores: Sequence[PostgresStore], call: Callable[[PostgresStore], Awaitable[T]]) -> list[T]:
    """The same call made by every instance at once."""
    return await asyncio.gather(*(call(store) for store in stores))


async def drain(stores: Sequence[PostgresStore], claim: Callable[[PostgresStore], Awaitable[list[int]]]) -> list[int]:
    """Claim from every instance at once, round after round, until a round claims nothing; every id claimed."""
    claimed: list[int] = []
    while any(found := await everywhere(stores, claim)):
        claimed += [item for ids in found for item in ids]
    return claimed


async def submitted_batches(stores: Sequence[PostgresStore], refunds: int) -> list[int]:
    """`refunds` refunds of distinct trades in one-refund batches, each SUBMITTED and due for a query at T0."""
    await stores[0].accept([req(f"r{i}", trade_no=f"T{i}") for i in range(refunds)], T0)
    ids = []
    while (batch := await stores[0].create_batch("main", 1, batch_nos(DAY), T0)) is not None:
        await stores[0].set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0)
        ids.append(batch.id)
    return ids


async def test_instances_opening_together_migrate_once(stores: list[PostgresStore]) -> None:
    async with stores[0].reading() as conn:
        versions = [int(r["version"]) for r in await conn.fetch("SELECT version FROM schema_version")]
        namespaces = await conn.fetch("SELECT value FROM meta WHERE key = 'namespace'")
    assert sorted(versions) == [version for version, _ in migrations()]
    assert len(namespaces) == 1
    assert set(await everywhere(stores, lambda store: store.namespace())) == {namespaces[0]["value"]}


async def test_the_same_requests_accepted_by_every_instance_are_stored_once(stores: list[PostgresStore]) -> None:
    for n in range(ROUNDS // 4):
        requests = [req(f"r{n}-{i}", trade_no=f"T{i % 7}") for i in range(40)]
        orders = [random.sample(requests, len(requests)) for _ in stores]  # groups lock trades in different orders
        groups = [store.accept(order[i : i + 5], T0) for store, order in zip(stores, orders, strict=True)
                  for i in range(0, len(requests), 5)]
        singles = [store.accept([request], T0) for request in requests for store in stores]
        results = [result for found in await asyncio.gather(*groups, *singles) for result in found]
        assert sum(result.created for result in results) == len(requests)
        ids = {result.refund.request.key: result.refund.id for result in results if result.created}
        assert all(ids[result.refund.request.key] == result.refund.id for result in results)
    assert (await stores[0].counts())["refunds"] == {"received": ROUNDS // 4 * 40}


async def test_one_key_sent_with_different_trades_is_stored_once(stores: list[PostgresStore]) -> None:
    for n in range(ROUNDS):
        results = await asyncio.gather(*(store.accept([req(f"k{n}", trade_no=f"T{n}-{i}")], T0)
                                         for i, store in enumerate(stores)))
        assert sum(result[0].created for result in results) == 1
        assert len({result[0].refund.id for result in results}) == 1


async def test_concurrent_refunds_of_one_trade_never_exceed_its_paid_amount(stores: list[PostgresStore]) -> None:
    for n in range(ROUNDS):
        requests = [req(f"p{n}-{i}", trade_no=f"P{n}", amount="30.00", paid_amount=Decimal("100.00"))
                    for i in range(10)]
        results = await asyncio.gather(*(stores[i % INSTANCES].accept([r], T0) for i, r in enumerate(requests)))
        refunds = [result[0].refund for result in results]
        assert Counter(refund.state for refund in refunds) == {RefundState.RECEIVED: 3, RefundState.REJECTED: 7}
        assert {refund.code for refund in refunds if refund.state is RefundState.REJECTED} == {EXCEEDS_PAID_AMOUNT}


async def test_every_refund_is_batched_exactly_once(stores: list[PostgresStore]) -> None:
    requests = [req(f"r{i}", trade_no=f"T{i % 50}") for i in range(200)]
    await stores[0].accept(requests, T0)

    async def create(store: PostgresStore) -> list[int]:
        batch = await store.create_batch("main", 7, batch_nos(DAY), T0)
        if batch is None:
            return []
        assert len({detail.trade_no for detail in batch.details}) == len(batch.details)
        return [detail.refund_id for detail in batch.details]

    batched = await drain(stores, create)
    assert sorted(batched) == sorted(set(batched)) and len(batched) == len(requests)
    assert (await stores[0].counts())["refunds"] == {"batched": len(requests)}


async def test_each_batch_is_claimed_for_submission_by_one_instance(stores: list[PostgresStore]) -> None:
    await stores[0].accept([req(f"r{i}", trade_no=f"T{i}") for i in range(ROUNDS)], T0)
    batch_ids = []
    while (batch := await stores[0].create_batch("main", 1, batch_nos(DAY), T0)) is not None:
        batch_ids.append(batch.id)

    def claim(now: float) -> Callable[[PostgresStore], Awaitable[list[int]]]:
        async def one(store: PostgresStore) -> list[int]:
            batch = await store.claim_batch_to_submit(now, LEASE)
            return [] if batch is None else [batch.id]

        return one

    assert sorted(await drain(stores, claim(T0))) == batch_ids
    assert await drain(stores, claim(T0 + LEASE / 2)) == []  # all still leased
    assert sorted(await drain(stores, claim(T0 + LEASE))) == batch_ids  # the senders died: each taken over once


async def test_each_due_batch_is_claimed_for_a_query_by_one_instance(stores: list[PostgresStore]) -> None:
    batch_ids = await submitted_batches(stores, 30)

    async def claim(store: PostgresStore) -> list[int]:
        return [batch.id for batch in await store.claim_batches_to_query(T0, 4, LEASE)]

    assert sorted(await drain(stores, claim)) == batch_ids


async def test_each_report_is_claimed_by_one_instance(stores: list[PostgresStore]) -> None:
    for batch_id in await submitted_batches(stores, 30):
        batch = await stores[0].get_batch(batch_id)
        assert batch is not None
        results = [DetailResult(detail.trade_no, detail.amount, "SUCCESS") for detail in batch.details]
        await stores[0].record_results(batch_id, results, T0, message_id=None, kind="query")

    async def claim(store: PostgresStore) -> list[int]:
        return [refund.id for refund in await store.claim_reports(T0, 4, LEASE)]

    claimed = await drain(stores, claim)
    assert len(claimed) == len(set(claimed)) == 30


async def test_results_recorded_by_several_instances_change_each_refund_once(stores: list[PostgresStore]) -> None:
    for batch_id in await submitted_batches(stores, ROUNDS):
        batch = await stores[0].get_batch(batch_id)
        assert batch is not None
        results = [DetailResult(detail.trade_no, detail.amount, "SUCCESS") for detail in batch.details]
        changes = await asyncio.gather(*(store.record_results(batch_id, results, T0, message_id=None, kind="query")
                                         for store in stores))
        assert [change.old_state for found in changes for change in found.changes] == [RefundState.SUBMITTED]


async def test_a_late_submit_outcome_never_undoes_a_recorded_result(stores: list[PostgresStore]) -> None:
    await stores[0].accept([req(f"r{i}", trade_no=f"T{i}") for i in range(ROUNDS)], T0)
    while (batch := await stores[0].create_batch("main", 1, batch_nos(DAY), T0)) is not None:
        results = [DetailResult(detail.trade_no, detail.amount, "SUCCESS") for detail in batch.details]
        await asyncio.gather(
            stores[0].set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0 + 300),
            stores[1].record_results(batch.id, results, T0, message_id=f"n{batch.id}", kind="refund"),
        )
    assert (await stores[0].counts())["refunds"] == {"succeeded": ROUNDS}


async def test_every_connection_plans_each_statement_for_its_values(pg_url: str) -> None:
    """No generic plan costed on a small table (store/postgres.py, PLANNING): checked on the pool's connections."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        async def mode() -> str:
            async with store.reading() as conn:
                row = await conn.fetchrow("SHOW plan_cache_mode")
            assert row is not None
            return str(row["plan_cache_mode"])

        assert set(await asyncio.gather(*(mode() for _ in range(4)))) == {"force_custom_plan"}
    finally:
        await store.close()
