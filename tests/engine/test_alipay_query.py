"""A batch whose outcome Alipay never tells us stays `unknown` (never `failed`) and ends in review; a query answer
that contradicts a recorded result changes nothing but flags the refund for review."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.channels.mapi.detail_data import RefundDetail, TradeRefund
from refund_adapter.channels.mapi.gateway import SubmitKind
from refund_adapter.channels.mapi.query import QueryResponse, render_query_response
from refund_adapter.channels.mapi.results import QueryItem, ResultItem, TradeResult
from refund_adapter.demo import PARTNER, SHOP_ID, demo_config
from refund_adapter.engine.alipay_query import query_batch, query_once
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.engine.submitter import submit_once
from refund_adapter.models import Batch, BatchState, DetailResult, Refund, RefundRequest, RefundState, ReportState
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import ADMIN_HEADERS, free_port, metric_value, serve, wait_until, with_admin_token
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

from .kit import EVENING_UTC, Clock, driven_engine, request
from .kit import MD5_KEY as KIT_MD5_KEY

MD5_KEY = "reconcilertestkey0123456789abcde"
SECRET = "whsec_" + base64.b64encode(b"reconciler-test-secret!!").decode()
TRADE = "2026112500000042"


async def test_a_gateway_that_never_answers_leaves_the_refund_unknown_then_in_review(tmp_path: Path) -> None:
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, faults={"answer_5xx": True},
                                   trades=[TradeSeed(TRADE, Decimal("50.00"))])
    shop = SimulatedShop(SECRET)
    async with run_sandbox(sandbox_config) as sandbox, serve(shop.app()) as shop_url:
        port = free_port()
        config = with_admin_token(demo_config(
            port, sandbox.url, shop_url + "/callback", SECRET, MD5_KEY, f"sqlite:///{tmp_path / 'r.db'}", 0.1,
            batching={"max_wait_seconds": 0.1},
            alipay_query={"first_query_after_seconds": 0.1, "schedule_seconds": [0.1, 0.1], "interval_seconds": 0.1},
        ))
        app = create_app(config)
        async with serve(app, port=port) as url, aiohttp.ClientSession() as session:
            payload = {"refund_id": "r1", "order_id": "o1", "trade_no": TRADE, "amount": "20.00",
                       "currency": "CNY", "reason": "lost in the network"}
            assert await shop.send_refund(session, url, SHOP_ID, payload) == 200
            store = app[ENGINE].store

            async def in_review() -> bool:
                return [b.state for b in await store.list_batches()] == [BatchState.REVIEW]

            await wait_until(in_review, within=20, what="batch in review")
            (batch,) = await store.list_batches()
            refund = await store.find_refund("generic", SHOP_ID, "r1")
    assert batch.query_attempts == 2 and batch.code == "UNRESOLVED"
    assert refund is not None and refund.state is RefundState.UNKNOWN  # not failed: the money may have moved
    assert refund.report_state is ReportState.NONE and shop.results == {}
    assert sandbox.state.ledger.trades[TRADE].refund_count == 0


TRADES = {"2026112500000051": Decimal("10.00"), "2026112500000052": Decimal("20.00")}


@dataclass
class Driven:
    """The app without its engine loops (the test takes each step), its two refunds stored, the sandbox behind."""

    ctx: EngineContext
    url: str
    http: aiohttp.ClientSession
    sandbox: RunningSandbox

    async def refund(self, trade: str) -> Refund:
        found = await self.ctx.store.find_refund("generic", SHOP_ID, f"r-{trade}")
        assert found is not None
        return found

    async def in_review(self) -> list[tuple[int, str]]:
        async with self.http.get(f"{self.url}/-/refunds?review=true", headers=ADMIN_HEADERS) as resp:
            return [(r["id"], r["review"]) for r in await resp.json()]

    async def counted(self) -> tuple[float, float]:
        """(refunds in review, anomalies counted from the query)."""
        return (await metric_value(self.http, self.url, "refund_adapter_refunds_in_review"),
                await metric_value(self.http, self.url, "refund_adapter_result_anomalies_total", source="query"))


@contextlib.asynccontextmanager
async def driven(tmp_path: Path) -> AsyncIterator[Driven]:
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0,
                                   faults={"drop_notifies": True},
                                   trades=[TradeSeed(trade, Decimal("50.00")) for trade in TRADES])
    shop = SimulatedShop(SECRET)
    async with run_sandbox(sandbox_config) as sandbox, serve(shop.app()) as shop_url:
        port = free_port()
        config = with_admin_token(demo_config(port, sandbox.url, shop_url + "/callback", SECRET, MD5_KEY,
                                              f"sqlite:///{tmp_path / 'r.db'}", 600))
        skew = [0.0]  # moved on once both refunds are in, so their batch is due at once
        app = create_app(config, clock=lambda: time.time() + skew[0], run_engine=False)
        async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
            for trade, amount in TRADES.items():
                payload = {"refund_id": f"r-{trade}", "order_id": "o", "trade_no": trade, "amount": str(amount),
                           "currency": "CNY", "reason": "paid twice?"}
                assert await shop.send_refund(http, url, SHOP_ID, payload) == 200
            skew[0] = config.batching.max_wait_seconds
            yield Driven(app[ENGINE], url, http, sandbox)


async def evaluated(driven: Driven, batch_no: str) -> None:
    async def done() -> bool:
        batch = driven.sandbox.state.batches.get(batch_no)
        return batch is not None and all(record.result for record in batch.details)

    await wait_until(done, within=10, what="the sandbox's verdicts")


async def test_a_query_answer_contradicting_a_recorded_result_changes_nothing_but_flags_the_refund(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier (wrong) verdict recorded TRADE_HAS_CLOSED for the first refund, while Alipay paid both. The
    query applies the second's result, and flags the first instead of overwriting it."""
    first, second = TRADES
    async with driven(tmp_path) as loop:
        ctx = loop.ctx
        assert await batch_once(ctx) and await submit_once(ctx)
        (batch,) = await ctx.store.list_batches()
        assert batch.state is BatchState.SUBMITTED and len(batch.details) == 2
        await evaluated(loop, batch.batch_no)
        wrong = DetailResult(first, TRADES[first], "TRADE_HAS_CLOSED")
        await ctx.store.record_results(batch.id, [wrong], ctx.clock(), message_id=None, kind="refund")
        caplog.clear()
        await query_batch(ctx, batch)
        after = await ctx.store.get_batch(batch.id)
        flagged, paid = await loop.refund(first), await loop.refund(second)
        assert await loop.in_review() == [(flagged.id, flagged.review)]
        assert await loop.counted() == (1, 1)
    assert (flagged.state, flagged.code) == (RefundState.FAILED, "TRADE_HAS_CLOSED")
    assert flagged.review == "query: SUCCESS, but failed TRADE_HAS_CLOSED is recorded"
    assert (paid.state, paid.code, paid.review) == (RefundState.SUCCEEDED, "SUCCESS", None)
    assert after is not None and after.state is BatchState.COMPLETED  # each detail has its (recorded) verdict
    (warning,) = [r for r in caplog.records if "flagged for review" in r.getMessage()]
    assert warning.levelname == "WARNING" and batch.batch_no in warning.getMessage()


async def test_a_query_answer_with_another_amount_flags_the_refund_and_sends_the_batch_to_review(
    tmp_path: Path,
) -> None:
    """Alipay holds our batch_no with other amounts (sent under it by someone else first): nothing is applied,
    both refunds are flagged, and the batch waits for an operator instead of being asked about again."""
    async with driven(tmp_path) as loop:
        ctx = loop.ctx
        assert await batch_once(ctx)
        (batch,) = await ctx.store.list_batches()
        others = [RefundDetail(TradeRefund(trade, amount + 1, "another install's refund"))
                  for trade, amount in TRADES.items()]
        sent = await ctx.channels["main"].gateway.submit(
            batch_no=batch.batch_no, refund_date=datetime.fromtimestamp(ctx.clock(), UTC), details=others,
            notify_url=None,
        )
        assert sent.kind is SubmitKind.ACCEPTED
        await ctx.store.set_batch_state(batch.id, BatchState.UNKNOWN, ctx.clock(), next_query_at=ctx.clock())
        await evaluated(loop, batch.batch_no)
        await query_batch(ctx, batch)
        after = await ctx.store.get_batch(batch.id)
        refunds = [await loop.refund(trade) for trade in TRADES]
        assert await loop.counted() == (2, 2)
    assert after is not None and (after.state, after.code) == (BatchState.REVIEW, "QUERY_MISMATCH")
    assert [(r.state, r.code, r.report_state) for r in refunds] == [(RefundState.UNKNOWN, None, ReportState.NONE)] * 2
    assert [r.review for r in refunds] == [f"query: SUCCESS for {amount + 1}, but {amount} was sent"
                                           for amount in TRADES.values()]


async def unresolved_batch(ctx: EngineContext, trade_no: str, amount: str) -> Batch:
    """One refund batched and left `unknown` (its submit unanswered), its query due now."""
    await ctx.store.accept([request(trade_no, amount)], ctx.clock() - 60)
    assert await batch_once(ctx)
    (batch,) = await ctx.store.list_batches()
    await ctx.store.set_batch_state(batch.id, BatchState.UNKNOWN, ctx.clock(), next_query_at=ctx.clock())
    return batch


@pytest.mark.parametrize(("formed_at", "resent"), [(EVENING_UTC, True), (EVENING_UTC - 86400, False)])
async def test_a_batch_alipay_never_received_is_resent_only_while_its_date_is_today_in_beijing(
    tmp_path: Path, formed_at: float, resent: bool
) -> None:
    """At 17:00 UTC the batch formed at that moment is dated tomorrow (Beijing) and still valid: sent again under
    the same batch_no; one formed a day earlier can no longer be sent, so it waits for the next query."""
    async with run_sandbox(SandboxConfig(partner=PARTNER, md5_key=KIT_MD5_KEY)) as sandbox:
        clock = Clock(formed_at)
        async with driven_engine(tmp_path, clock, gateway_url=sandbox.url) as ctx:
            batch = await unresolved_batch(ctx, "2026112500000078", "20.00")
            clock.now = EVENING_UTC
            assert await query_once(ctx)
            (after,) = await ctx.store.list_batches()
            (refund,) = await ctx.store.list_refunds()
    assert after.batch_no == batch.batch_no
    assert after.state is (BatchState.PENDING if resent else BatchState.UNKNOWN)
    assert refund.state is RefundState.UNKNOWN


def answering(text: str) -> web.Application:
    """A gateway on 127.0.0.1 answering every query with `text` (the query's answer is plain, unsigned text)."""
    return answering_from([text])


def answering_from(answer: list[str]) -> web.Application:
    """A gateway answering every query with `answer[0]`, which the test may change between queries."""

    async def gateway(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=answer[0])

    app = web.Application()
    app.router.add_post("/gateway.do", gateway)
    return app


@pytest.mark.parametrize(
    ("answer", "resent"),
    [
        ("is_success=T", True),  # Alipay holds no verdict for it: never evaluated, so never paid
        ("is_success=F&error_code=REFUND_NOT_EXIST", True),
        ("is_success=F&error_code=SYSTEM_ERROR", False),  # says nothing about the batch: ask again later
    ],
)
async def test_an_unknown_batch_of_today_is_resent_only_when_alipay_says_it_has_no_verdict(
    tmp_path: Path, answer: str, resent: bool
) -> None:
    clock = Clock()
    async with serve(answering(answer)) as url, driven_engine(
        tmp_path, clock, gateway_url=url + "/gateway.do", alipay_query={"schedule_seconds": [600, 1200]}
    ) as ctx:
        batch = await unresolved_batch(ctx, "2026112500000079", "20.00")
        assert await query_once(ctx)
        (after,) = await ctx.store.list_batches()
        if not resent:  # asked again after the schedule's first delay, not before
            assert await ctx.store.claim_batches_to_query(clock.now + 599, 10, 60) == []
            assert [b.id for b in await ctx.store.claim_batches_to_query(clock.now + 600, 10, 60)] == [batch.id]
    assert after.state is (BatchState.PENDING if resent else BatchState.UNKNOWN)
    assert after.batch_no == batch.batch_no


async def test_a_batch_whose_account_is_gone_is_asked_about_on_schedule_then_sent_to_review(tmp_path: Path) -> None:
    clock = Clock()
    async with driven_engine(tmp_path, clock, alipay_query={"schedule_seconds": [600]}) as ctx:
        await ctx.store.accept([dataclasses.replace(request(), alipay_account="removed")], clock.now)
        batch = await ctx.store.create_batch("removed", 10, batch_nos(beijing_now().date()), clock.now)
        assert batch is not None
        await ctx.store.set_batch_state(batch.id, BatchState.UNKNOWN, clock.now, next_query_at=clock.now)
        assert await query_once(ctx)
        (waiting,) = await ctx.store.list_batches()
        assert not await query_once(ctx)
        clock.now += 600
        assert await query_once(ctx)
        (reviewed,) = await ctx.store.list_batches()
        (refund,) = await ctx.store.list_refunds()
    assert (waiting.state, waiting.query_attempts) == (BatchState.UNKNOWN, 1)
    assert (reviewed.state, reviewed.code) == (BatchState.REVIEW, "UNRESOLVED")
    assert refund.state is RefundState.UNKNOWN


async def test_a_query_answering_part_of_a_batch_records_that_part_and_asks_again_for_the_rest(
    tmp_path: Path,
) -> None:
    """Alipay has evaluated one detail of two: that refund is settled (and the reporter woken); the batch is
    asked about again after the schedule's next delay, and once all are answered it is completed, not asked again.
    """
    answer = ["is_success=T"]
    clock = Clock()
    async with serve(answering_from(answer)) as url, driven_engine(
        tmp_path, clock, gateway_url=url + "/gateway.do", alipay_query={"schedule_seconds": [600, 1200]}
    ) as ctx:
        first, second = request(amount="20.00"), request(amount="30.00")
        await ctx.store.accept([first, second], clock.now - 60)
        assert await batch_once(ctx)
        (batch,) = await ctx.store.list_batches()
        await ctx.store.set_batch_state(batch.id, BatchState.SUBMITTED, clock.now, next_query_at=clock.now)

        def verdicts(*requests: RefundRequest) -> str:
            return render_query_response(QueryResponse(True, tuple(
                QueryItem(batch.batch_no, ResultItem(TradeResult(r.trade_no, r.amount, "SUCCESS"))) for r in requests
            )))

        answer[0] = verdicts(first)
        assert await query_once(ctx)
        states = {r.request.trade_no: r.state for r in await ctx.store.list_refunds()}
        assert states == {first.trade_no: RefundState.SUCCEEDED, second.trade_no: RefundState.SUBMITTED}
        assert ctx.signals.reporter.is_set()
        assert await ctx.store.claim_batches_to_query(clock.now + 599, 10, 60) == []
        clock.now += 600
        answer[0] = verdicts(first, second)
        assert await query_once(ctx)
        (completed,) = await ctx.store.list_batches()
        assert not await query_once(ctx)
        assert await ctx.store.claim_batches_to_query(clock.now + 10 * 86400, 10, 60) == []
        assert {r.state for r in await ctx.store.list_refunds()} == {RefundState.SUCCEEDED}
    assert completed.state is BatchState.COMPLETED and completed.query_attempts == 1


async def test_a_query_answer_naming_a_trade_not_in_the_batch_sends_it_to_review(tmp_path: Path) -> None:
    """Under our batch_no Alipay holds a trade we never put in it: nothing is recorded, an operator looks."""
    answer = ["is_success=T"]
    clock = Clock()
    async with serve(answering_from(answer)) as url, driven_engine(
        tmp_path, clock, gateway_url=url + "/gateway.do", alipay_query={"schedule_seconds": [600]}
    ) as ctx:
        batch = await unresolved_batch(ctx, "2026112500000081", "20.00")
        stranger = QueryItem(batch.batch_no, ResultItem(TradeResult("2026112599999999", Decimal("20.00"), "SUCCESS")))
        answer[0] = render_query_response(QueryResponse(True, (stranger,)))
        assert await query_once(ctx)
        (reviewed,) = await ctx.store.list_batches()
        (refund,) = await ctx.store.list_refunds()
    assert (reviewed.state, reviewed.code) == (BatchState.REVIEW, "QUERY_MISMATCH")
    assert (refund.state, refund.code, refund.report_state) == (RefundState.UNKNOWN, None, ReportState.NONE)
