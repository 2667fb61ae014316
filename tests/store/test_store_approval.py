"""Batches an operator approves at Alipay, on every backend: they wait, are counted and summed, and keep their
batch_no until Alipay provably cannot have it (no link left for it, or its query found nothing after its day)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from refund_adapter.channels.mapi.batch_no import batch_no_date, batch_nos
from refund_adapter.models import BatchState, DetailResult, RefundState
from refund_adapter.store import Cause, RefundStore

from .test_store_contract import DAY, T0, req

NEXT_DAY = DAY + timedelta(days=1)


async def _awaiting(store: RefundStore, *amounts: str, day: date = DAY, now: float = T0) -> int:
    await store.accept([req(f"r{i}-{now}", trade_no=f"20261125220{i:02d}", amount=amount)
                        for i, amount in enumerate(amounts)], now)
    batch = await store.create_batch("main", 1000, batch_nos(day), now, awaiting_approval=True)
    assert batch is not None and batch.state is BatchState.AWAITING_APPROVAL
    return batch.id


async def test_a_batch_awaiting_approval_is_neither_sent_nor_queried(store: RefundStore) -> None:
    batch_id = await _awaiting(store, "10.00", "2.50")
    assert await store.claim_batch_to_submit(T0 + 10, 60) is None
    assert await store.claim_batches_to_query(T0 + 10**6, 10, 60) == []
    refunds = await store.list_refunds(batch_id=batch_id)
    assert {refund.state for refund in refunds} == {RefundState.BATCHED}


async def test_the_queue_counts_sums_and_dates_what_waits(store: RefundStore) -> None:
    empty = await store.approval_queue()
    assert (empty.count, empty.total, empty.oldest_created_at, empty.batches) == (0, Decimal("0.00"), None, [])
    first = await _awaiting(store, "10.00", "2.50", now=T0)
    second = await _awaiting(store, "0.01", now=T0 + 60)
    queue = await store.approval_queue(limit=1)
    assert (queue.count, queue.total) == (2, Decimal("12.51"))
    assert queue.oldest_created_at is not None and queue.oldest_created_at.timestamp() == T0
    assert [batch.id for batch in queue.batches] == [first]  # oldest first, with its details
    assert sorted(detail.amount for detail in queue.batches[0].details) == [Decimal("2.50"), Decimal("10.00")]
    assert (await store.approval_queue(accounts=["main", "other"])).count == 2
    for elsewhere in (["other"], []):
        other = await store.approval_queue(accounts=elsewhere)
        assert (other.count, other.total, other.batches) == (0, Decimal("0.00"), [])
    await store.record_results(second, [DetailResult("2026112522000", Decimal("0.01"), "SUCCESS")], T0 + 90,
                               message_id="n1", kind="refund")
    after = await store.approval_queue()
    assert (after.count, after.total) == (1, Decimal("12.50"))  # the approved one left the queue
    assert (await store.get_batch(second)).state is BatchState.COMPLETED  # type: ignore[union-attr]


async def test_links_of_one_day_share_the_batch_no_and_schedule_a_query(store: RefundStore) -> None:
    batch_id = await _awaiting(store, "10.00")
    original = await store.get_batch(batch_id)
    assert original is not None
    first = await store.issue_approval(batch_id, batch_nos(DAY), T0 + 5, next_query_at=T0 + 305)
    second = await store.issue_approval(batch_id, batch_nos(DAY), T0 + 9, next_query_at=T0 + 309)
    assert first is not None and second is not None
    assert first.batch_no == second.batch_no == original.batch_no
    assert second.approval_link_at is not None and second.approval_link_at.timestamp() == T0 + 9
    assert await store.claim_batches_to_query(T0 + 304, 10, 60) == []
    assert [batch.id for batch in await store.claim_batches_to_query(T0 + 305, 10, 60)] == [batch_id]


async def test_a_batch_no_no_link_left_for_moves_to_the_day_of_the_next_link(store: RefundStore) -> None:
    batch_id = await _awaiting(store, "10.00")
    before = await store.get_batch(batch_id)
    moved = await store.issue_approval(batch_id, batch_nos(NEXT_DAY), T0 + 86_400, next_query_at=T0 + 86_700)
    assert before is not None and moved is not None
    assert batch_no_date(moved.batch_no) == NEXT_DAY and moved.batch_no[8:] == before.batch_no[8:]
    assert (await store.list_refunds(batch_id=batch_id))[0].batch_no == moved.batch_no
    assert [entry.kind for entry in await store.batch_journal(batch_id)][-2:] == ["redated", "approval_link"]


async def test_a_batch_no_a_link_left_for_stays_until_its_query_proves_it_unused(store: RefundStore) -> None:
    batch_id = await _awaiting(store, "10.00")
    opened = await store.issue_approval(batch_id, batch_nos(DAY), T0 + 5, next_query_at=T0 + 305)
    assert opened is not None
    kept = await store.issue_approval(batch_id, batch_nos(NEXT_DAY), T0 + 86_400, next_query_at=T0 + 86_700)
    assert kept is not None and kept.batch_no == opened.batch_no  # Alipay may have it: asked first, due now
    assert await store.release_for_submit(batch_id, batch_nos(NEXT_DAY), T0 + 86_400) is None
    assert [batch.id for batch in await store.claim_batches_to_query(T0 + 86_400, 10, 60)] == [batch_id]
    await store.approval_expired(batch_id, T0 + 86_401, cause=Cause("query", "REFUND_NOT_EXIST after its day"))
    fresh = await store.issue_approval(batch_id, batch_nos(NEXT_DAY), T0 + 86_402, next_query_at=T0 + 86_702)
    assert fresh is not None and batch_no_date(fresh.batch_no) == NEXT_DAY
    assert fresh.batch_no[8:] == opened.batch_no[8:]


async def test_a_released_batch_is_sent_under_its_batch_no(store: RefundStore) -> None:
    batch_id = await _awaiting(store, "10.00")
    waiting = await store.get_batch(batch_id)
    released = await store.release_for_submit(batch_id, batch_nos(DAY), T0 + 5)
    assert waiting is not None and released is not None and released.state is BatchState.PENDING
    claimed = await store.claim_batch_to_submit(T0 + 6, 60)
    assert claimed is not None and (claimed.id, claimed.batch_no) == (batch_id, waiting.batch_no)
    assert await store.issue_approval(batch_id, batch_nos(DAY), T0 + 7, next_query_at=T0 + 300) is None  # not waiting
