"""One behavioural suite, run on every backend: the store is what makes 'never lost, never twice' true."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from datetime import date
from decimal import Decimal
from typing import TypeVar

import pytest

from refund_adapter.channels.mapi.batch_no import batch_nos, validate_batch_no
from refund_adapter.models import BatchState, DetailResult, RefundRequest, RefundState, ReportState
from refund_adapter.platform import PluginData
from refund_adapter.store import EXCEEDS_PAID_AMOUNT, RefundStore, store_from_url, synthetic
from refund_adapter.store.sql import BULK_CHUNK, SqlStore

T = TypeVar("T")
DAY = date(2026, 11, 25)
T0 = 1_780_000_000.0

def req(refund_id: str, trade_no: str = "2026112522001", amount: str = "10.00", **kw: object) -> RefundRequest:
    fields: dict[str, object] = {
        "platform": "generic", "shop": "s1", "platform_refund_id": refund_id, "order_id": "o-" + refund_id,
        "trade_no": trade_no, "amount": Decimal(amount), "currency": "CNY", "reason": "退款", "alipay_account": "main",
    }
    fields.update(kw)
    return RefundRequest(**fields)  # type: ignore[arg-type]


async def test_accept_is_idempotent_on_platform_shop_and_refund_id(store: RefundStore) -> None:
    first = await store.accept([req("r1", context={"gid": "x"})], T0)
    again = await store.accept([req("r1", amount="99.00")], T0 + 1)
    assert first[0].created and not again[0].created
    assert again[0].refund.id == first[0].refund.id
    assert again[0].refund.request.amount == Decimal("10.00")  # the replay changed nothing
    assert again[0].conflict == ("amount",)
    assert first[0].refund.request.context == {"gid": "x"}
    assert (await store.counts())["refunds"] == {"received": 1}
    other_shop = await store.accept([req("r1", shop="s2")], T0)
    assert other_shop[0].created


async def test_accepted_refunds_survive_reopening(store: RefundStore, store_url: str) -> None:
    await store.accept([req("r1")], T0)
    namespace = await store.namespace()
    await store.close()
    reopened = store_from_url(store_url)
    await reopened.open()  # migrations already applied: a no-op that keeps the data and the install id
    try:
        refund = await reopened.find_refund("generic", "s1", "r1")
        assert refund is not None and refund.state is RefundState.RECEIVED
        assert refund.request.amount == Decimal("10.00") and isinstance(refund.request.amount, Decimal)
        assert await reopened.namespace() == namespace
    finally:
        await reopened.close()


async def test_concurrent_accepts_are_all_stored_once(store: RefundStore) -> None:
    requests = [req(f"r{i}", trade_no=f"T{i}") for i in range(60)]
    results = await asyncio.gather(*(store.accept([r], T0) for r in requests + requests))
    created = [res[0].created for res in results]
    assert created.count(True) == 60
    assert len({res[0].refund.id for res in results}) == 60
    assert (await store.counts())["refunds"] == {"received": 60}


async def test_a_key_repeated_in_one_call_is_created_once(store: RefundStore) -> None:
    results = await store.accept([req("r1"), req("r2", trade_no="T2"), req("r1", amount="99.00")], T0)
    assert [r.created for r in results] == [True, True, False]
    assert [r.conflict for r in results] == [(), (), ("amount",)]
    assert results[2].refund.id == results[0].refund.id
    assert results[2].refund.request.amount == Decimal("10.00")
    assert (await store.counts())["refunds"] == {"received": 2}


async def test_the_paid_amount_holds_within_one_call_and_across_concurrent_ones(store: RefundStore) -> None:
    paid = Decimal("100.00")
    one_call = await store.accept([req("a1", amount="60.00", paid_amount=paid),
                                   req("a2", amount="50.00", paid_amount=paid),
                                   req("a3", amount="40.00", paid_amount=paid)], T0)
    assert [r.refund.state for r in one_call] == [RefundState.RECEIVED, RefundState.REJECTED, RefundState.RECEIVED]
    assert one_call[1].refund.code == EXCEEDS_PAID_AMOUNT
    concurrent = await asyncio.gather(*(store.accept([req(f"b{i}", trade_no="TB", amount="30.00", paid_amount=paid)],
                                                     T0) for i in range(5)))
    states = [results[0].refund.state for results in concurrent]
    assert states.count(RefundState.RECEIVED) == 3 and states.count(RefundState.REJECTED) == 2
    stored = {r.refund.request.platform_refund_id: r.refund.state for results in concurrent for r in results}
    for name, state in stored.items():
        found = await store.find_refund("generic", "s1", name)
        assert found is not None and found.state is state


async def test_a_resent_refund_is_not_counted_twice_against_the_paid_amount(store: RefundStore) -> None:
    """A webhook sent again, in the same group as a new refund of its trade: only what is stored counts."""
    paid = Decimal("100.00")
    first = await store.accept([req("r1", amount="30.00", paid_amount=paid)], T0)
    results = await store.accept([req("r1", amount="30.00", paid_amount=paid),
                                  req("r2", amount="50.00", paid_amount=paid),
                                  req("r3", amount="20.01", paid_amount=paid)], T0 + 1)
    assert [r.created for r in results] == [False, True, True]
    assert results[0].refund == first[0].refund  # the replay changed nothing
    assert [r.refund.state for r in results] == [RefundState.RECEIVED, RefundState.RECEIVED, RefundState.REJECTED]
    stored = await store.find_refund("generic", "s1", "r2")
    assert stored is not None and stored.state is RefundState.RECEIVED
    assert (await store.counts())["refunds"] == {"received": 2, "rejected": 1}


async def test_refunds_never_exceed_the_paid_amount(store: RefundStore) -> None:
    ok = await store.accept([req("r1", amount="60.00", paid_amount=Decimal("100.00"))], T0)
    over = await store.accept([req("r2", amount="40.01", paid_amount=Decimal("100.00"))], T0)
    assert ok[0].refund.state is RefundState.RECEIVED
    assert over[0].refund.state is RefundState.REJECTED
    assert over[0].refund.code == EXCEEDS_PAID_AMOUNT
    assert over[0].refund.report_state is ReportState.PENDING  # the platform will be told
    exact = await store.accept([req("r3", amount="40.00", paid_amount=Decimal("100.00"))], T0)
    assert exact[0].refund.state is RefundState.RECEIVED


async def test_failed_refunds_do_not_count_against_the_paid_amount(store: RefundStore) -> None:
    await store.accept([req("r1", amount="100.00", paid_amount=Decimal("100.00"))], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0)
    await store.record_results(batch.id, [DetailResult("2026112522001", Decimal("100"), "TRADE_HAS_CLOSED")],
                               T0, message_id="n1", kind="refund")
    again = await store.accept([req("r2", amount="100.00", paid_amount=Decimal("100.00"))], T0)
    assert again[0].refund.state is RefundState.RECEIVED


async def test_a_batch_holds_each_trade_once_and_at_most_max_details(store: RefundStore) -> None:
    await store.accept([req("a1", "TA"), req("a2", "TA"), req("b1", "TB"), req("c1", "TC")], T0)
    first = await store.create_batch("main", 2, batch_nos(DAY), T0)
    assert first is not None
    assert [d.trade_no for d in first.details] == ["TA", "TB"]
    second = await store.create_batch("main", 2, batch_nos(DAY), T0)
    assert second is not None
    assert sorted(d.trade_no for d in second.details) == ["TA", "TC"]
    assert await store.create_batch("main", 2, batch_nos(DAY), T0) is None
    assert await store.create_batch("other", 2, batch_nos(DAY), T0) is None
    for batch in (first, second):
        assert validate_batch_no(batch.batch_no, today=DAY) == batch.batch_no
        assert batch.state is BatchState.PENDING
    assert first.batch_no != second.batch_no
    refund = await store.find_refund("generic", "s1", "a1")
    assert refund is not None and refund.state is RefundState.BATCHED and refund.batch_no == first.batch_no


async def test_counts_by_state_by_report_state_and_by_batch_state(store: RefundStore) -> None:
    paid = Decimal("10.00")
    await store.accept([req("r1", "T1", paid_amount=paid), req("r2", "T1", paid_amount=paid), req("r3", "T2")], T0)
    await store.create_batch("main", 10, batch_nos(DAY), T0)  # r2 took T1 past its paid amount: rejected, report due
    assert await store.counts() == {
        "refunds": {"batched": 2, "rejected": 1},
        "reports": {"none": 2, "pending": 1},
        "batches": {"pending": 1},
        "review": {"flagged": 0},
    }


async def test_pending_work_reports_count_and_age_per_account(store: RefundStore) -> None:
    await store.accept([req("r1", alipay_account="main")], T0)
    await store.accept([req("r2", alipay_account="main")], T0 + 5)
    await store.accept([req("r3", alipay_account="hk")], T0 + 7)
    work = {w.account: w for w in await store.pending_work()}
    assert work["main"].count == 2 and work["main"].oldest_created_at == T0
    assert work["hk"].count == 1


async def test_a_crashed_submit_is_claimed_again_with_the_same_batch_no(store: RefundStore) -> None:
    await store.accept([req("r1")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    claimed = await store.claim_batch_to_submit(T0, lease_seconds=60)
    assert claimed is not None and claimed.id == batch.id
    assert claimed.state is BatchState.SENDING and claimed.submit_attempts == 1
    assert await store.claim_batch_to_submit(T0 + 30, lease_seconds=60) is None  # still leased
    again = await store.claim_batch_to_submit(T0 + 61, lease_seconds=60)  # the sender died
    assert again is not None and again.batch_no == batch.batch_no and again.submit_attempts == 2


async def test_submit_outcomes_move_the_refunds(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2")], T0)
    batch = await store.create_batch("main", 1, batch_nos(DAY), T0)
    other = await store.create_batch("main", 1, batch_nos(DAY), T0)
    assert batch is not None and other is not None
    changes = await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0 + 300)
    assert [(c.old_state, c.refund.state) for c in changes] == [(RefundState.BATCHED, RefundState.SUBMITTED)]
    rejected = await store.set_batch_state(other.id, BatchState.REJECTED, T0, code="SELLER_STATUS_NOT_ALLOW")
    assert rejected[0].refund.state is RefundState.FAILED
    assert rejected[0].refund.code == "SELLER_STATUS_NOT_ALLOW"
    assert rejected[0].refund.report_state is ReportState.PENDING
    unknown_batch = await store.get_batch(batch.id)
    assert unknown_batch is not None and unknown_batch.state is BatchState.SUBMITTED


async def test_results_are_recorded_once_and_complete_the_batch(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.UNKNOWN, T0, next_query_at=T0 + 300)
    results = [DetailResult("T1", Decimal("10"), "SUCCESS"),
               DetailResult("T2", Decimal("10.00"), "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH")]
    changes = (await store.record_results(batch.id, results, T0 + 1, message_id="nid", kind="refund")).changes
    assert {c.refund.request.trade_no: c.refund.state for c in changes} == {
        "T1": RefundState.SUCCEEDED, "T2": RefundState.FAILED}
    assert all(c.old_state is RefundState.UNKNOWN for c in changes)
    assert await store.notify_seen(batch.batch_no, "nid", "refund")
    assert not await store.notify_seen(batch.batch_no, "other", "refund")
    again = await store.record_results(batch.id, results, T0 + 2, message_id="nid", kind="refund")
    assert (again.changes, again.anomalies) == ([], [])
    done = await store.get_batch(batch.id)
    assert done is not None and done.state is BatchState.COMPLETED
    assert (await store.counts())["reports"] == {"pending": 2}


async def test_partial_results_leave_the_batch_open(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0 + 300)
    await store.record_results(batch.id, [DetailResult("T1", Decimal("10"), "SUCCESS")], T0, message_id=None,
                               kind="query")
    still = await store.get_batch(batch.id)
    assert still is not None and still.state is BatchState.SUBMITTED


async def test_query_claims_are_due_only_and_leased(store: RefundStore) -> None:
    await store.accept([req("r1")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0 + 300)
    assert await store.claim_batches_to_query(T0 + 299, 10, 60) == []
    due = await store.claim_batches_to_query(T0 + 300, 10, 60)
    assert [b.id for b in due] == [batch.id]
    assert await store.claim_batches_to_query(T0 + 330, 10, 60) == []
    await store.schedule_query(batch.id, T0 + 900, T0 + 330)
    later = await store.claim_batches_to_query(T0 + 900, 10, 60)
    assert later[0].query_attempts == 1


async def test_the_outbox_delivers_retries_and_keeps_dead_letters(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0)
    await store.record_results(batch.id, [DetailResult("T1", Decimal("10"), "SUCCESS"),
                                          DetailResult("T2", Decimal("10"), "SUCCESS")], T0, message_id="n", kind="r")
    claimed = await store.claim_reports(T0, 10, 30)
    assert [r.request.trade_no for r in claimed] == ["T1", "T2"]
    assert await store.claim_reports(T0 + 1, 10, 30) == []  # leased
    await store.report_delivered([claimed[0].id], T0 + 5)
    await store.report_failed(claimed[1].id, "HTTP 503", next_at=T0 + 100, now=T0 + 5)
    assert await store.claim_reports(T0 + 99, 10, 30) == []
    retried = await store.claim_reports(T0 + 100, 10, 30)
    assert [r.id for r in retried] == [claimed[1].id] and retried[0].report_attempts == 2
    await store.report_failed(claimed[1].id, "HTTP 401 bad token", next_at=None, now=T0 + 6)
    dead = await store.list_refunds(report_state="dead")
    assert [r.report_error for r in dead] == ["HTTP 401 bad token"]
    assert await store.retry_dead_letters(T0 + 200) == 1
    back = await store.claim_reports(T0 + 200, 10, 30)
    assert [r.id for r in back] == [claimed[1].id]
    counts = await store.counts()
    assert counts["reports"] == {"delivered": 1, "pending": 1}


async def test_the_outbox_age_is_that_of_its_oldest_result_whatever_the_attempts(store: RefundStore) -> None:
    assert await store.oldest_pending_report() is None
    await store.accept([req("r1", "T1"), req("r2", "T2")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0)
    await store.record_results(batch.id, [DetailResult("T1", Decimal("10"), "SUCCESS")], T0 + 5, message_id="n1",
                               kind="r")
    await store.record_results(batch.id, [DetailResult("T2", Decimal("10"), "SUCCESS")], T0 + 9, message_id="n2",
                               kind="r")
    assert await store.oldest_pending_report() == T0 + 5
    first, second = await store.claim_reports(T0 + 20, 10, 30)
    await store.report_failed(first.id, "HTTP 503", next_at=T0 + 100, now=T0 + 20)  # an attempt: no younger
    assert await store.oldest_pending_report() == T0 + 5
    await store.report_delivered([first.id], T0 + 30)
    assert await store.oldest_pending_report() == T0 + 9
    await store.report_failed(second.id, "HTTP 401", next_at=None, now=T0 + 20)  # a dead letter: out of the outbox
    assert await store.oldest_pending_report() is None


async def test_an_open_store_has_every_migration_applied(store: RefundStore) -> None:
    assert await store.schema_problem() is None


async def test_listing_filters_and_pages(store: RefundStore) -> None:
    await store.accept([req(f"r{i}", trade_no=f"T{i}") for i in range(5)], T0)
    page = await store.list_refunds(limit=2)
    assert [r.request.platform_refund_id for r in page] == ["r4", "r3"]
    rest = await store.list_refunds(limit=10, before_id=page[-1].id)
    assert [r.request.platform_refund_id for r in rest] == ["r2", "r1", "r0"]
    assert await store.list_refunds(state=RefundState.SUCCEEDED) == []
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    assert await store.find_batch(batch.batch_no) == batch
    assert {r.id for r in await store.list_refunds(batch_id=batch.id)} == {d.refund_id for d in batch.details}
    assert [b.id for b in await store.list_batches()] == [batch.id]


async def test_plugin_data_is_durable_replaceable_and_namespaced(store: RefundStore) -> None:
    data = PluginData(store, "shopify", clock=lambda: T0)
    other = PluginData(store, "woocommerce", clock=lambda: T0)
    assert await data.get("payment:1") is None
    await data.put_many({"payment:1": "2026112500000001", "payment:2": "2026112500000002"})
    await data.put("payment:1", "2026112500000009")
    assert await data.get("payment:1") == "2026112500000009"
    assert await data.get("payment:2") == "2026112500000002"
    assert await other.get("payment:1") is None
    await data.put("cursor", "x")
    assert await data.items("payment:") == {"payment:1": "2026112500000009", "payment:2": "2026112500000002"}
    await data.delete(["payment:1", "absent"])
    assert await data.items("payment:") == {"payment:2": "2026112500000002"}
    assert await data.items() == {"cursor": "x", "payment:2": "2026112500000002"}


async def test_a_late_submit_answer_does_not_reopen_a_completed_batch(store: RefundStore) -> None:
    await store.accept([req("r1")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.record_results(batch.id, [DetailResult("2026112522001", Decimal("10"), "SUCCESS")], T0,
                               message_id="n", kind="refund")
    assert await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0 + 1, next_query_at=T0 + 300) == []
    done = await store.get_batch(batch.id)
    assert done is not None and done.state is BatchState.COMPLETED
    refund = await store.find_refund("generic", "s1", "r1")
    assert refund is not None and refund.state is RefundState.SUCCEEDED


async def test_one_bad_request_fails_alone_when_others_share_its_commit(store: RefundStore) -> None:
    bad = req("bad", amount="0.001")  # not a whole number of fen: the store refuses it
    results = await asyncio.gather(
        *(store.accept([req(f"ok{i}", trade_no=f"T{i}")], T0) for i in range(5)),
        store.accept([bad], T0),
        return_exceptions=True,
    )
    assert isinstance(results[-1], ValueError)
    assert all(not isinstance(r, BaseException) and r[0].created for r in results[:-1])
    assert (await store.counts())["refunds"] == {"received": 5}


async def test_an_abandoned_batch_returns_its_refunds_for_a_new_batch_no(store: RefundStore) -> None:
    await store.accept([req("r1")], T0)
    first = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert first is not None
    changes = await store.set_batch_state(first.id, BatchState.ABANDONED, T0, code="BATCH_NO_FORMAT_ERROR")
    assert [(c.old_state, c.refund.state) for c in changes] == [(RefundState.BATCHED, RefundState.RECEIVED)]
    second = await store.create_batch("main", 1000, batch_nos(date(2026, 11, 26)), T0)
    assert second is not None and second.batch_no != first.batch_no and second.batch_no.startswith("20261126")
    assert [d.refund_id for d in second.details] == [d.refund_id for d in first.details]


async def test_refunds_the_channel_refuses_leave_their_batch_and_the_rest_is_sent_again(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2\n"), req("r3", "T3")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    bad = batch.details[1].refund_id
    assert await store.remove_from_batch(batch.id, [bad], "INVALID_DETAIL", T0) == []  # not SENDING: untouched
    claimed = await store.claim_batch_to_submit(T0, lease_seconds=60)
    assert claimed is not None and claimed.submit_attempts == 1
    assert await store.remove_from_batch(batch.id, [999_999], "INVALID_DETAIL", T0) == []  # not in the batch
    changes = await store.remove_from_batch(batch.id, [bad], "INVALID_DETAIL", T0 + 1)
    assert [(c.old_state, c.refund.state, c.refund.code) for c in changes] == [
        (RefundState.BATCHED, RefundState.REJECTED, "INVALID_DETAIL")
    ]
    rejected = changes[0].refund
    assert (rejected.id, rejected.batch_id, rejected.batch_no) == (bad, None, None)
    assert rejected.report_state is ReportState.PENDING
    assert [r.id for r in await store.claim_reports(T0 + 1, 10, 60)] == [bad]  # reported like any final refund
    # The rest goes back to be sent at once under the same batch_no; the claim that sent nothing does not count.
    again = await store.claim_batch_to_submit(T0 + 1, lease_seconds=60)
    assert again is not None and (again.id, again.batch_no) == (batch.id, batch.batch_no)
    assert [d.trade_no for d in again.details] == ["T1", "T3"] and again.submit_attempts == 1


async def test_a_batch_left_without_refunds_is_rejected(store: RefundStore) -> None:
    await store.accept([req("r1", "T1\n")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None and await store.claim_batch_to_submit(T0, lease_seconds=60) is not None
    changes = await store.remove_from_batch(batch.id, [batch.details[0].refund_id], "INVALID_DETAIL", T0)
    assert [c.refund.state for c in changes] == [RefundState.REJECTED]
    emptied = await store.get_batch(batch.id)
    assert emptied is not None and (emptied.state, emptied.code, emptied.details) == (
        BatchState.REJECTED, "INVALID_DETAIL", ()
    )
    assert await store.claim_batch_to_submit(T0 + 120, lease_seconds=60) is None


async def test_a_batch_refused_for_an_unnamed_detail_is_split_in_two_new_batches(store: RefundStore) -> None:
    await store.accept([req(f"r{i}", f"T{i}") for i in range(5)], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    assert await store.split_batch(batch.id, batch_nos(DAY), T0, code="DETAIL_DATA_FORMAT_ERROR") == []  # not SENDING
    assert await store.claim_batch_to_submit(T0, lease_seconds=60) is not None
    halves = await store.split_batch(batch.id, batch_nos(date(2026, 11, 26)), T0 + 1, code="DETAIL_DATA_FORMAT_ERROR")
    assert [[d.trade_no for d in half.details] for half in halves] == [["T0", "T1"], ["T2", "T3", "T4"]]
    assert all(half.state is BatchState.PENDING and half.submit_attempts == 0 for half in halves)
    assert all(validate_batch_no(half.batch_no).startswith("20261126") for half in halves)
    assert len({batch.batch_no, *(half.batch_no for half in halves)}) == 3
    old = await store.get_batch(batch.id)
    assert old is not None and (old.state, old.code, old.details) == (
        BatchState.ABANDONED, "DETAIL_DATA_FORMAT_ERROR", ()
    )
    stored = await store.list_refunds()
    assert {r.state for r in stored} == {RefundState.BATCHED}  # still on their way, in the halves
    assert {r.batch_no for r in stored} == {half.batch_no for half in halves}
    first = await store.claim_batch_to_submit(T0 + 1, lease_seconds=60)
    assert first is not None and first.id == halves[0].id
    quarters = await store.split_batch(first.id, batch_nos(DAY), T0 + 1, code="DETAIL_DATA_FORMAT_ERROR")
    assert [[d.trade_no for d in quarter.details] for quarter in quarters] == [["T0"], ["T1"]]


async def test_a_batch_of_one_refund_is_not_split(store: RefundStore) -> None:
    await store.accept([req("r1", "T1")], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None and await store.claim_batch_to_submit(T0, lease_seconds=60) is not None
    assert await store.split_batch(batch.id, batch_nos(DAY), T0, code="DETAIL_DATA_FORMAT_ERROR") == []
    unchanged = await store.get_batch(batch.id)
    assert unchanged is not None and unchanged.state is BatchState.SENDING and len(unchanged.details) == 1


# --- conflicts: a known key redelivered with other content --------------------------------------------------

CONTENT_CHANGES = {
    "amount": {"amount": "10.01"},
    "currency": {"currency": "HKD"},
    "trade_no": {"trade_no": "2026112522999"},
    "alipay_account": {"alipay_account": "hk"},
    "order_id": {"order_id": "o-other"},
}


@pytest.mark.parametrize("field", CONTENT_CHANGES)
async def test_a_redelivery_with_other_content_is_a_conflict_that_changes_nothing(
    store: RefundStore, field: str
) -> None:
    (first,) = await store.accept([req("r1")], T0)
    changed = {name: Decimal(value) if name == "amount" else value for name, value in CONTENT_CHANGES[field].items()}
    conflicting, new = await store.accept([req("r1", **changed), req("r2", trade_no="T2")], T0 + 1)
    assert (conflicting.created, conflicting.conflict) == (False, (field,))
    assert conflicting.refund == first.refund  # the stored refund, as it was
    assert (new.created, new.conflict) == (True, ())  # the other refund of the call is stored all the same
    assert await store.find_refund("generic", "s1", "r1") == first.refund
    assert (await store.counts())["refunds"] == {"received": 2}


async def test_an_identical_redelivery_or_one_differing_only_outside_the_content_is_no_conflict(
    store: RefundStore,
) -> None:
    (first,) = await store.accept([req("r1", paid_amount=Decimal("50.00"), context={"webhook_id": "a"})], T0)
    for again in (req("r1", paid_amount=Decimal("50.00"), context={"webhook_id": "a"}),
                  req("r1", amount="10", paid_amount=Decimal("40.00"), reason="edited", context={"webhook_id": "b"})):
        (result,) = await store.accept([again], T0 + 1)
        assert (result.created, result.conflict, result.refund) == (False, (), first.refund)


async def test_every_differing_field_is_named(store: RefundStore) -> None:
    await store.accept([req("r1")], T0)
    (result,) = await store.accept([req("r1", amount="11.00", trade_no="T9", order_id="o-9")], T0)
    assert result.conflict == ("amount", "trade_no", "order_id")


@pytest.mark.parametrize("field", ["amount", "trade_no"])  # trade_no: no shared trade lock, both insert at once
async def test_of_two_concurrent_versions_of_one_refund_one_is_stored_and_the_other_conflicts(
    store: RefundStore, field: str
) -> None:
    versions = {"amount": ({"amount": "10.00"}, {"amount": "20.00"}), "trade_no": ({}, {"trade_no": "T-other"})}
    for i in range(10):
        results = await asyncio.gather(*(store.accept([req(f"r{i}", **version)], T0) for version in versions[field]))
        (created,), (refused,) = sorted(results, key=lambda r: not r[0].created)
        assert created.created and not refused.created
        assert refused.conflict == (field,) and refused.refund == created.refund
    assert (await store.counts())["refunds"] == {"received": 10}


# --- anomalies: a result from Alipay that contradicts the record --------------------------------------------


async def _submitted(store: RefundStore, *trades: str) -> int:
    await store.accept([req(f"r-{trade}", trade) for trade in trades], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
    assert batch is not None
    await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0, next_query_at=T0 + 300)
    return batch.id


async def test_a_different_verdict_for_a_settled_refund_changes_nothing_but_flags_it(store: RefundStore) -> None:
    batch_id = await _submitted(store, "T1")
    await store.record_results(batch_id, [DetailResult("T1", Decimal("10.00"), "SUCCESS")], T0, message_id="n1",
                               kind="refund")
    settled = await store.find_refund("generic", "s1", "r-T1")
    assert settled is not None and settled.review is None
    recorded = await store.record_results(batch_id, [DetailResult("T1", Decimal("10.00"), "TRADE_HAS_CLOSED")],
                                          T0 + 5, message_id="n2", kind="refund")
    assert recorded.changes == []
    (anomaly,) = recorded.anomalies
    assert (anomaly.refund_id, anomaly.trade_no) == (settled.id, "T1")
    assert anomaly.reason == "refund n2: TRADE_HAS_CLOSED, but succeeded SUCCESS is recorded"
    after = await store.get_refund(settled.id)
    assert after is not None
    assert after.review == anomaly.reason
    assert after == dataclasses.replace(settled, review=anomaly.reason)  # the money outcome and its report as they were
    assert await store.notify_seen(settled.batch_no or "", "n2", "refund")
    # The same contradiction again (a query, say): still an anomaly, the first reason kept.
    again = await store.record_results(batch_id, [DetailResult("T1", Decimal("10"), "SUCCESS_NOT")], T0 + 9,
                                       message_id=None, kind="query")
    assert [a.reason for a in again.anomalies] == ["query: SUCCESS_NOT, but succeeded SUCCESS is recorded"]
    assert (await store.get_refund(settled.id)) == after
    # The recorded verdict itself, again: no anomaly.
    same = await store.record_results(batch_id, [DetailResult("T1", Decimal("10"), "SUCCESS")], T0 + 9,
                                      message_id=None, kind="query")
    assert (same.changes, same.anomalies) == ([], [])


async def test_success_for_a_refund_recorded_as_failed_is_an_anomaly(store: RefundStore) -> None:
    batch_id = await _submitted(store, "T1")
    await store.set_batch_state(batch_id, BatchState.REJECTED, T0, code="SELLER_STATUS_NOT_ALLOW")
    recorded = await store.record_results(batch_id, [DetailResult("T1", Decimal("10.00"), "SUCCESS")], T0,
                                          message_id="n1", kind="refund")
    (anomaly,) = recorded.anomalies
    assert anomaly.reason == "refund n1: SUCCESS, but failed SELLER_STATUS_NOT_ALLOW is recorded"
    refund = await store.find_refund("generic", "s1", "r-T1")
    assert refund is not None and (refund.state, refund.code) == (RefundState.FAILED, "SELLER_STATUS_NOT_ALLOW")


async def test_an_amount_other_than_the_one_sent_is_not_applied_and_the_rest_is(store: RefundStore) -> None:
    batch_id = await _submitted(store, "T1", "T2")
    recorded = await store.record_results(
        batch_id, [DetailResult("T1", Decimal("9.99"), "SUCCESS"), DetailResult("T2", Decimal("10.00"), "SUCCESS")],
        T0, message_id="n1", kind="refund",
    )
    assert [(c.refund.request.trade_no, c.refund.state) for c in recorded.changes] == [("T2", RefundState.SUCCEEDED)]
    (anomaly,) = recorded.anomalies
    assert (anomaly.trade_no, anomaly.reason) == ("T1", "refund n1: SUCCESS for 9.99, but 10.00 was sent")
    flagged = await store.find_refund("generic", "s1", "r-T1")
    assert flagged is not None and (flagged.state, flagged.code) == (RefundState.SUBMITTED, None)
    batch = await store.get_batch(batch_id)
    assert batch is not None and batch.state is BatchState.SUBMITTED  # not complete: the query will ask again
    assert [r.id for r in await store.list_refunds(review=True)] == [flagged.id]
    assert [r.request.trade_no for r in await store.list_refunds(review=False)] == ["T2"]
    assert (await store.counts())["review"] == {"flagged": 1}


async def test_a_review_reason_is_bounded(store: RefundStore) -> None:
    batch_id = await _submitted(store, "T1")
    recorded = await store.record_results(batch_id, [DetailResult("T1", Decimal("10.00"), "X" * 5000)], T0,
                                          message_id="n" * 5000, kind="refund")
    assert recorded.anomalies == []  # an unsettled refund takes any verdict for the amount sent
    recorded = await store.record_results(batch_id, [DetailResult("T1", Decimal("10.00"), "Y" * 5000)], T0,
                                          message_id="n" * 5000, kind="refund")
    (anomaly,) = recorded.anomalies
    refund = await store.get_refund(anomaly.refund_id)
    assert refund is not None and refund.review is not None and len(refund.review) == 500


async def test_an_operator_clears_a_review_flag_and_nothing_else(store: RefundStore) -> None:
    batch_id = await _submitted(store, "T1")
    await store.record_results(batch_id, [DetailResult("T1", Decimal("9.00"), "SUCCESS")], T0, message_id="n1",
                               kind="refund")
    flagged = await store.find_refund("generic", "s1", "r-T1")
    assert flagged is not None and flagged.review is not None
    cleared = await store.clear_review(flagged.id, T0 + 20)
    assert cleared == dataclasses.replace(flagged, review=None)
    assert await store.get_refund(flagged.id) == cleared
    assert await store.list_refunds(review=True) == [] and (await store.counts())["review"] == {"flagged": 0}
    assert await store.clear_review(flagged.id + 1000, T0 + 20) is None


# -- work over many rows: bounded per statement, the event loop let run in between -------------------------------
async def _with_ticks(work: Awaitable[T]) -> tuple[T, int]:
    """`work`'s result and how many times another task ran on the loop while it did."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        return await work, ticks
    finally:
        done.set()
        await task


async def test_synthetic_refunds_and_batches_are_stored_as_asked(store: RefundStore) -> None:
    assert isinstance(store, SqlStore)
    batch_ids = await synthetic.add_batches(store, 3, now=T0)
    await synthetic.add_refunds(store, 2500, state="failed", report_state="dead", now=T0, batch_ids=batch_ids)
    await synthetic.add_refunds(store, 10, state="received", report_state="none", now=T0)
    assert (await store.counts())["refunds"] == {"failed": 2500, "received": 10}
    assert (await store.counts())["batches"] == {"completed": 3}
    assert [len((await store.get_batch(i)).details) for i in batch_ids] == [834, 834, 832]  # type: ignore[union-attr]
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)  # the synthetic trades: distinct, valid numbers
    assert batch is not None and len(batch.details) == 10


async def test_retrying_every_dead_letter_goes_a_chunk_at_a_time_and_lets_the_loop_run(store: RefundStore) -> None:
    """Found by bench/stalls.py: a million dead letters were one UPDATE, 13 s of SQLite in line on the loop."""
    assert isinstance(store, SqlStore)
    await synthetic.add_refunds(store, 2 * BULK_CHUNK + 500, state="failed", report_state="dead", now=T0)
    await synthetic.add_refunds(store, 700, state="succeeded", report_state="delivered", now=T0)
    requeued, ticks = await _with_ticks(store.retry_dead_letters(T0 + 1))
    assert requeued == 2 * BULK_CHUNK + 500
    assert ticks >= 2  # the loop ran between the three chunks (SQLite's statements never yield it by themselves)
    assert (await store.counts())["reports"] == {"pending": 2 * BULK_CHUNK + 500, "delivered": 700}
    assert await store.retry_dead_letters(T0 + 2) == 0


async def test_retrying_a_list_longer_than_any_statement_takes(store: RefundStore) -> None:
    """Found by bench/stalls.py: a 1 MiB list of ids was one statement with 145,000 parameters, past PostgreSQL's
    32,767 (a 500) and 48 s of SQLite's parser in line on the loop."""
    assert isinstance(store, SqlStore)
    await synthetic.add_refunds(store, 3000, state="failed", report_state="dead", now=T0)
    await synthetic.add_refunds(store, 100, state="succeeded", report_state="delivered", now=T0)
    first = (await store.list_refunds(limit=1, before_id=None, report_state="dead"))[0].id - 2999  # newest first
    ids = [*range(first, first + 40_000), first, first + 1, 0, -5, 2**63, 2**80]  # repeats; ids naming nothing
    requeued, ticks = await _with_ticks(store.retry_dead_letters(T0 + 1, ids))
    assert requeued == 3000 and ticks >= 2
    assert (await store.counts())["reports"] == {"pending": 3000, "delivered": 100}


async def test_batches_are_listed_in_pages_bounded_by_their_details(store: RefundStore) -> None:
    assert isinstance(store, SqlStore)
    batch_ids = await synthetic.add_batches(store, 5, now=T0)
    await synthetic.add_refunds(store, 5000, now=T0, batch_ids=batch_ids)
    page = await store.list_batches(limit=100, max_details=2500)
    assert [b.id for b in page] == batch_ids[::-1][:3]  # whole batches: the page ends with the one reaching 2500
    rest = await store.list_batches(limit=100, max_details=2500, before_id=page[-1].id)
    assert [b.id for b in rest] == batch_ids[::-1][3:]
    assert [b.id for b in await store.list_batches(limit=2)] == batch_ids[::-1][:2]


async def test_a_bulk_transaction_commits_or_rolls_back_as_one(store: RefundStore) -> None:
    assert isinstance(store, SqlStore)
    await store.accept([req("r1")], T0)
    with pytest.raises(RuntimeError):
        async with store.bulk_transaction() as tx:
            await tx.execute("UPDATE refunds SET state = 'failed'")
            raise RuntimeError("undone")
    assert (await store.counts())["refunds"] == {"received": 1}
    changed, ticks = await _with_ticks(store.create_batch("main", 1000, batch_nos(DAY), T0))  # a bulk transaction
    assert changed is not None and ticks >= 1  # its statements left the loop free (SQLite: on the writer's thread)
    async with store.bulk_transaction() as tx:
        await tx.execute("UPDATE refunds SET code = 'X'")
    assert (await store.get_refund(changed.details[0].refund_id)).code == "X"  # type: ignore[union-attr]


async def test_a_bulk_action_cancelled_midway_leaves_whole_chunks_and_the_writer_free(store: RefundStore) -> None:
    """A cancelled caller (a client gone, a shutdown): each chunk is committed or rolled back whole, and the next
    transaction finds the writer free (on SQLite the statement it was waiting for finishes first)."""
    assert isinstance(store, SqlStore)
    await synthetic.add_refunds(store, 3 * BULK_CHUNK, state="failed", report_state="dead", now=T0)
    task = asyncio.create_task(store.retry_dead_letters(T0 + 1))
    for _ in range(3):
        await asyncio.sleep(0)  # into its first chunk
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    requeued = (await store.counts())["reports"].get("pending", 0)
    assert requeued % BULK_CHUNK == 0  # whole chunks only
    assert await store.retry_dead_letters(T0 + 2) == 3 * BULK_CHUNK - requeued
    await store.accept([req("r1")], T0 + 3)  # the in-line writer is free too
    assert (await store.counts())["reports"] == {"pending": 3 * BULK_CHUNK, "none": 1}
