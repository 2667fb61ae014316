"""The operator's reads on every backend: each refund's and batch's journal, finding refunds, batches, summaries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import BatchState, DetailResult, RefundState, ReportState
from refund_adapter.store import EXCEEDS_PAID_AMOUNT, Cause, RefundFilter, RefundStore
from refund_adapter.store import sql as store_sql
from refund_adapter.store.journal import MAX_TEXT, bounded
from refund_adapter.store.tally import rounded_seconds

from .test_store_contract import DAY, T0, req

SUBMIT = Cause("submit", "submit attempt 1: accepted", {
    "answer": "accepted", "request": {"batch_no": "B", "detail_data": "T1^10.00^退款", "sign": "c0ffee",
                                      "md5_key": "secret", "partner": "2088"}})


def kinds(entries: list) -> list[str]:
    return [entry.kind for entry in entries]


async def _batched(store: RefundStore, *trades: str) -> int:
    await store.accept([req(f"r-{trade}", trade) for trade in trades], T0)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0 + 1)
    assert batch is not None
    claimed = await store.claim_batch_to_submit(T0 + 2, 60)
    assert claimed is not None and claimed.id == batch.id
    return batch.id


async def test_a_refund_journal_tells_its_whole_life_with_causes(store: RefundStore) -> None:
    batch_id = await _batched(store, "T1", "T2")
    await store.set_batch_state(batch_id, BatchState.SUBMITTED, T0 + 3, next_query_at=T0 + 300, cause=SUBMIT)
    closed = DetailResult("T2", Decimal("10"), "TRADE_HAS_CLOSED", "T2^10^TRADE_HAS_CLOSED")
    await store.record_results(batch_id, [DetailResult("T1", Decimal("10"), "SUCCESS", "T1^10^SUCCESS"), closed],
                               T0 + 4, message_id="n-1", kind="refund")
    r1 = await store.find_refund("generic", "s1", "r-T1")
    assert r1 is not None
    await store.claim_reports(T0 + 5, 10, 30)
    await store.report_failed(r1.id, "HTTP 503", next_at=T0 + 100, now=T0 + 6)
    await store.claim_reports(T0 + 100, 10, 30)
    await store.report_failed(r1.id, "HTTP 401 bad token", next_at=None, now=T0 + 101)
    assert await store.retry_dead_letters(T0 + 200, [r1.id]) == 1
    await store.claim_reports(T0 + 200, 10, 30)
    await store.report_delivered([r1.id], T0 + 201)

    entries = await store.refund_journal(r1.id)
    assert kinds(entries) == ["accepted", "batched", "submit", "result", "report", "report", "operator_retry",
                              "report"]
    assert entries[0].at == datetime.fromtimestamp(T0, UTC)
    assert entries[2].detail["to"] == "submitted" and entries[2].detail["cause"] == "submit attempt 1: accepted"
    result = entries[3].detail
    assert (result["from"], result["to"], result["line"]) == ("submitted", "succeeded", "T1^10^SUCCESS")
    assert result["cause"] == "refund notify n-1"
    assert [(e.detail["attempt"], e.detail["status"]) for e in entries if e.kind == "report"] == [
        (1, "retry"), (2, "dead"), (1, "delivered")]
    assert entries[5].detail["reason"] == "HTTP 401 bad token"

    batch_entries = await store.batch_journal(batch_id)
    assert kinds(batch_entries) == ["submit", "refund"]
    request = batch_entries[0].detail["request"]
    assert request == {"batch_no": "B", "detail_data": "T1^10.00^退款", "partner": "2088"}  # no sign, no key
    notify = batch_entries[1].detail
    assert notify["message_id"] == "n-1" and notify["verified"] is True
    assert notify["results"] == ["T1^10^SUCCESS", "T2^10^TRADE_HAS_CLOSED"]
    batch = await store.get_batch(batch_id)
    assert batch is not None and batch.state is BatchState.COMPLETED
    assert (batch.sent_at, batch.acknowledged_at, batch.notified_at) == tuple(
        datetime.fromtimestamp(t, UTC) for t in (T0 + 2, T0 + 3, T0 + 4))


async def test_a_refund_over_the_paid_amount_says_why_and_an_unknown_one_has_no_journal(store: RefundStore) -> None:
    results = await store.accept([req("r1", amount="60.00", paid_amount=Decimal("50.00"))], T0)
    entries = await store.refund_journal(results[0].refund.id)
    assert kinds(entries) == ["accepted", "rejected"] and entries[1].detail["code"] == EXCEEDS_PAID_AMOUNT
    assert await store.refund_journal(results[0].refund.id + 1) == []


async def test_contradictions_removals_and_splits_are_in_the_journals(store: RefundStore) -> None:
    batch_id = await _batched(store, "T1", "T2", "T3")
    r3 = await store.find_refund("generic", "s1", "r-T3")
    assert r3 is not None
    await store.remove_from_batch(batch_id, [r3.id], "INVALID_DETAIL", T0 + 3)
    assert kinds(await store.refund_journal(r3.id)) == ["accepted", "batched", "rejected"]
    assert (await store.refund_journal(r3.id))[2].detail["code"] == "INVALID_DETAIL"
    await store.claim_batch_to_submit(T0 + 4, 60)
    halves = await store.split_batch(batch_id, batch_nos(DAY), T0 + 5, code="BATCH_MEMO_ERROR")
    assert len(halves) == 2
    assert kinds(await store.batch_journal(batch_id)) == ["details_removed", "split"]
    r1 = await store.find_refund("generic", "s1", "r-T1")
    assert r1 is not None
    moved = (await store.refund_journal(r1.id))[-1]
    assert moved.kind == "batched" and moved.detail["batch_id"] == halves[0].id
    await store.set_batch_state(halves[0].id, BatchState.SUBMITTED, T0 + 6)
    await store.record_results(halves[0].id, [DetailResult("T1", Decimal("9.00"), "SUCCESS")], T0 + 7,
                               message_id="n-2", kind="refund")
    flagged = (await store.refund_journal(r1.id))[-1]
    assert flagged.kind == "review" and "9.00" in flagged.detail["reason"]
    await store.clear_review(r1.id, T0 + 8)
    assert (await store.refund_journal(r1.id))[-1].kind == "review_cleared"


async def test_refused_notifies_are_kept_up_to_a_bound(store: RefundStore, monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id = await _batched(store, "T1")
    monkeypatch.setattr(store_sql, "MAX_JOURNAL", 3)
    for i in range(5):
        await store.record_batch_event(batch_id, "refund_refused", {"reason": f"bad signature {i}"}, T0 + i)
    assert [e.detail["reason"] for e in await store.batch_journal(batch_id)] == [
        "bad signature 0", "bad signature 1", "bad signature 2"]


def test_a_journal_detail_is_bounded_and_holds_no_secret() -> None:
    detail = bounded({"sign": "x", "Sign_Type": "MD5", "token": "t", "long": "y" * 10_000,
                      "many": list(range(1000)), "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}})
    assert set(detail) == {"long", "many", "deep"}
    assert len(detail["long"]) == MAX_TEXT + 1 and detail["many"][-1] == "…" and len(detail["many"]) == 101
    assert detail["deep"]["a"]["b"]["c"] == "{'d': {'e': 1}}"


async def test_refunds_are_found_by_filters_and_by_any_of_their_ids(store: RefundStore) -> None:
    await store.accept([req("r1", "T1"), req("r2", "T2", shop="s2", order_id="ORDER-2"),
                        req("r3", "T3", alipay_account="other")], T0)
    await store.accept([req("r4", "T4", platform="shopify")], T0 + 86_400)
    batch = await store.create_batch("main", 1000, batch_nos(DAY), T0 + 86_401)
    assert batch is not None

    async def ids(where: RefundFilter, **page: int) -> list[str]:
        return [r.request.platform_refund_id for r in (await store.find_refunds(where, **page)).refunds]

    assert await ids(RefundFilter()) == ["r4", "r3", "r2", "r1"]
    assert await ids(RefundFilter(shop="s2")) == ["r2"]
    assert await ids(RefundFilter(account="other")) == ["r3"]
    assert await ids(RefundFilter(platform="shopify")) == ["r4"]
    assert await ids(RefundFilter(state=RefundState.BATCHED)) == ["r4", "r2", "r1"]
    assert await ids(RefundFilter(state=RefundState.BATCHED, report_state=ReportState.DEAD)) == []
    assert await ids(RefundFilter(created_from=T0 + 1)) == ["r4"]
    assert await ids(RefundFilter(created_to=T0 + 1)) == ["r3", "r2", "r1"]
    assert await ids(RefundFilter(search="ORDER-2")) == ["r2"]
    assert await ids(RefundFilter(search="r3")) == ["r3"]
    assert await ids(RefundFilter(search="T4")) == ["r4"]
    assert await ids(RefundFilter(search=batch.batch_no)) == ["r4", "r2", "r1"]
    assert await ids(RefundFilter(search=batch.batch_no, shop="s1")) == ["r4", "r1"]
    assert await ids(RefundFilter(search="nothing")) == []
    first = await store.find_refunds(RefundFilter(), limit=2)
    assert first.older == first.refunds[-1].id
    second = await store.find_refunds(RefundFilter(), limit=2, before_id=first.older)
    assert [r.request.platform_refund_id for r in second.refunds] == ["r2", "r1"]
    back = await store.find_refunds(RefundFilter(), limit=2, after_id=second.refunds[0].id)
    assert back.refunds == first.refunds
    last = await store.find_refunds(RefundFilter(), limit=3, before_id=second.refunds[0].id)
    assert [r.request.platform_refund_id for r in last.refunds] == ["r1"] and last.older is None


async def test_batches_are_listed_with_their_refunds_counted(store: RefundStore) -> None:
    batch_id = await _batched(store, "T1", "T2")
    await store.set_batch_state(batch_id, BatchState.SUBMITTED, T0 + 3)
    await store.record_results(batch_id, [DetailResult("T1", Decimal("10"), "SUCCESS")], T0 + 4,
                               message_id="n", kind="refund")
    await store.accept([req("r-T9", "T9", amount="5.00")], T0 + 5)
    other = await store.create_batch("main", 1000, batch_nos(DAY), T0 + 6)
    assert other is not None
    everything = await store.batch_overviews()
    assert [o.batch.id for o in everything] == [other.id, batch_id]
    assert everything[1].refunds == {"succeeded": 1, "submitted": 1}
    assert everything[1].batch.details == () and everything[1].batch.notified_at is not None
    submitted = await store.batch_overviews(state=BatchState.SUBMITTED)
    assert [o.batch.id for o in submitted] == [batch_id]
    assert [o.batch.id for o in await store.batch_overviews(before_id=other.id)] == [batch_id]


async def test_an_operator_can_requery_a_submitted_or_reviewed_batch_and_nothing_else(store: RefundStore) -> None:
    batch_id = await _batched(store, "T1")
    assert await store.requery_batch(batch_id, T0 + 3) is None  # SENDING: the submitter has it
    await store.set_batch_state(batch_id, BatchState.UNKNOWN, T0 + 3, next_query_at=T0 + 3600)
    await store.set_batch_state(batch_id, BatchState.REVIEW, T0 + 4, code="UNRESOLVED")
    again = await store.requery_batch(batch_id, T0 + 5)
    assert again is not None and again.state is BatchState.UNKNOWN  # its refund's state is unknown
    assert [b.id for b in await store.claim_batches_to_query(T0 + 5, 10, 60)] == [batch_id]
    assert kinds(await store.batch_journal(batch_id))[-1] == "operator_requery"
    await store.record_results(batch_id, [DetailResult("T1", Decimal("10"), "SUCCESS")], T0 + 6, message_id=None,
                               kind="query")
    assert await store.requery_batch(batch_id, T0 + 7) is None  # completed
    assert await store.requery_batch(batch_id + 100, T0 + 7) is None


async def test_a_listed_batch_is_in_the_state_asked_for_while_batches_complete(store: RefundStore) -> None:
    """`list_batches(state=submitted)` read the ids, then each batch again: one completed meanwhile was listed
    as completed (reported under load on `/-/batches?state=submitted`)."""
    ids = []
    for i in range(40):
        await store.accept([req(f"r{i}", f"T{i}")], T0)
        batch = await store.create_batch("main", 1000, batch_nos(DAY), T0)
        assert batch is not None
        await store.set_batch_state(batch.id, BatchState.SUBMITTED, T0)
        ids.append(batch.id)

    async def complete() -> None:
        for i, batch_id in enumerate(ids):
            await store.record_results(batch_id, [DetailResult(f"T{i}", Decimal("10"), "SUCCESS")], T0,
                                       message_id=f"n{i}", kind="refund")
            await asyncio.sleep(0)

    async def read() -> set[BatchState]:
        seen: set[BatchState] = set()
        for _ in range(20):
            seen |= {batch.state for batch in await store.list_batches(state=BatchState.SUBMITTED)}
            seen |= {o.batch.state for o in await store.batch_overviews(state=BatchState.SUBMITTED)}
        return seen

    _, seen = await asyncio.gather(complete(), read())
    assert seen <= {BatchState.SUBMITTED}


async def test_the_summary_counts_whole_hours_and_times_webhook_to_report(store: RefundStore) -> None:
    h0 = T0 // 3600 * 3600  # an hour's start
    await store.accept([req("r1", "T1", amount="10.50"), req("r2", "T2"), req("r3", "T3")], h0 + 10)
    await store.accept([req("r4", "T4", amount="7.00", alipay_account="other")], h0 + 3700)
    await store.accept([req("r0", "T0")], h0 - 1)  # the hour before the window
    await store.accept([req("r5", "T5", amount="90.00", paid_amount=Decimal("50.00"))], h0 + 20)  # rejected at once
    for account in ("main", "other"):
        batch = await store.create_batch(account, 1000, batch_nos(DAY), h0 + 3701)
        assert batch is not None
        await store.set_batch_state(batch.id, BatchState.SUBMITTED, h0 + 3702)
        results = [DetailResult(d.trade_no, d.amount, "TRADE_HAS_CLOSED" if d.trade_no == "T3" else "SUCCESS")
                   for d in batch.details if d.trade_no not in ("T2", "T0")]
        await store.record_results(batch.id, results, h0 + 3703, message_id=f"n-{account}", kind="refund")
    reports = await store.claim_reports(h0 + 3704, 10, 30)
    delivered = {r.request.trade_no: r.id for r in reports}
    await store.report_delivered([delivered["T1"], delivered["T3"]], h0 + 3710)  # 3700 s after the webhook
    await store.report_delivered([delivered["T4"]], h0 + 3720)  # 20 s after
    summary = await store.summary(h0 + 5, h0 + 2 * 3600 - 5, 3600)  # the tallies count whole hours
    assert (summary.since.timestamp(), summary.until.timestamp()) == (h0, h0 + 7200)
    assert summary.by_state == {"succeeded": 2, "failed": 1, "submitted": 1, "rejected": 1}
    assert summary.success_rate == pytest.approx(2 / 4)
    assert summary.refunded_by_account == {"main": Decimal("10.50"), "other": Decimal("7.00")}
    assert isinstance(summary.refunded_by_account["main"], Decimal)
    assert (summary.reported_seconds_p50, summary.reported_seconds_p95) == (rounded_seconds(3700),) * 2
    assert [(at.timestamp(), counts) for at, counts in summary.series] == [
        (h0, {"succeeded": 1, "failed": 1, "submitted": 1, "rejected": 1}), (h0 + 3600, {"succeeded": 1})]
    before = await store.summary(h0 - 3600, h0, 3600)
    assert before.by_state == {"submitted": 1} and before.reported_seconds_p50 is None  # r0, still on its way
    empty = await store.summary(h0 + 10 * 3600, h0 + 11 * 3600, 3600)
    assert empty.by_state == {} and empty.success_rate is None and empty.reported_seconds_p50 is None


def test_report_times_are_kept_to_within_ten_percent() -> None:
    times = [0, 7.9, 10, 10.5, 99.9, 100, 149, 3710, 86_399]
    rounded = [rounded_seconds(s) for s in times]
    assert rounded[:3] == [0, 7, 10] and rounded == sorted(rounded)
    assert all(0.9 * int(s) <= r <= int(s) for s, r in zip(times[2:], rounded[2:], strict=True)), rounded
