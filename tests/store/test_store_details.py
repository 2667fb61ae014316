"""What the store contract left unasked and mutation testing found unguarded, on both backends: a state change
names its batch, an operator's error text is kept whole up to its bound, leases run out, lookups of what is
not there answer None, filters filter, counts add up."""

from __future__ import annotations

from datetime import date

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, DetailResult, RefundState, ReportState
from refund_adapter.store import RefundStore

from .test_store_contract import req

NOW = 1_764_090_000.0
DAY = date(2026, 11, 25)


async def settled(store: RefundStore, *ids: str) -> tuple[int, list[int]]:
    """A batch of refunds `ids` (one trade each), submitted and answered SUCCESS: (batch id, refund ids)."""
    await store.accept([req(refund_id, trade_no=f"20261125{n:08d}") for n, refund_id in enumerate(ids)], NOW)
    batch = await store.create_batch("main", 10, batch_nos(DAY), NOW)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, NOW)
    recorded = await store.record_results(
        batch.id, [DetailResult(d.trade_no, d.amount, "SUCCESS") for d in batch.details], NOW,
        message_id="n-" + batch.batch_no, kind="refund",
    )
    changes = recorded.changes
    assert len(changes) == len(ids) and {c.refund.batch_no for c in changes} == {batch.batch_no}  # told to plugins
    return batch.id, [d.refund_id for d in batch.details]


async def test_a_report_error_is_kept_up_to_500_characters(store: RefundStore) -> None:
    _, (refund_id,) = await settled(store, "r1")
    assert await store.claim_reports(NOW, 10, 60)
    await store.report_failed(refund_id, "x" * 499 + "yz", next_at=NOW + 1, now=NOW)
    found = await store.get_refund(refund_id)
    assert found is not None and found.report_error == "x" * 499 + "y"


async def test_a_claimed_report_or_query_comes_back_when_its_lease_runs_out(store: RefundStore) -> None:
    """A claim that is never settled (the process died) is claimable again after the lease, not before."""
    batch_id, (refund_id,) = await settled(store, "r1")
    assert [r.id for r in await store.claim_reports(NOW, 10, 60)] == [refund_id]
    assert await store.claim_reports(NOW + 59, 10, 60) == []
    assert [r.id for r in await store.claim_reports(NOW + 60, 10, 60)] == [refund_id]
    await store.accept([req("r2", trade_no="2026112599999999")], NOW)
    batch = await store.create_batch("main", 10, batch_nos(DAY), NOW)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, NOW, next_query_at=NOW)
    assert [b.id for b in await store.claim_batches_to_query(NOW, 10, 120)] == [batch.id]
    assert await store.claim_batches_to_query(NOW + 119, 10, 120) == []
    assert [b.id for b in await store.claim_batches_to_query(NOW + 120, 10, 120)] == [batch.id]
    assert batch_id != batch.id


async def test_lookups_of_what_is_not_there_answer_none(store: RefundStore) -> None:
    await settled(store, "r1")
    assert await store.get_refund(10_000) is None
    assert await store.find_refund("generic", "s1", "nope") is None
    assert await store.get_batch(10_000) is None
    assert await store.find_batch("20261125ZZZZ000001") is None


async def test_filters_filter_and_counts_add_up(store: RefundStore) -> None:
    first, (a, b) = await settled(store, "r1", "r2")
    await store.accept([req("r3", trade_no="2026112577777777")], NOW)
    second = await store.create_batch("main", 10, batch_nos(DAY), NOW)
    assert second is not None
    assert await store.claim_reports(NOW, 10, 60)
    await store.report_delivered([a], NOW)  # a delivered, b still pending: two rows of succeeded refunds to count
    assert sorted(r.id for r in await store.list_refunds(batch_id=first)) == sorted([a, b])
    assert [b.id for b in await store.list_batches(state=BatchState.PENDING)] == [second.id]
    counts = await store.counts()
    assert counts["refunds"] == {RefundState.SUCCEEDED.value: 2, RefundState.BATCHED.value: 1}
    assert counts["reports"] == {ReportState.DELIVERED.value: 1, ReportState.PENDING.value: 1,
                                 ReportState.NONE.value: 1}


async def test_the_namespace_is_the_one_batch_nos_carry(store: RefundStore) -> None:
    await settled(store, "r1")
    (batch,) = await store.list_batches()
    namespace = await store.namespace()
    assert isinstance(namespace, str) and batch.batch_no[8:].startswith(namespace)
    assert len(batch.batch_no) == 8 + len(namespace) + 6
