"""One submit step at a time: what each answer does to the batch, and when it is queried or sent again."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from refund_adapter.channels.mapi.ack import render_ack
from refund_adapter.channels.mapi.batch_no import batch_no_date, batch_nos
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.submitter import RETRY_DELAY_SECONDS, submit_once
from refund_adapter.models import BatchState, RefundState
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import serve

from .kit import MD5_KEY, PARTNER, Clock, driven_engine, request

DAY = 86400.0
TRADE = "2026112500000099"


async def test_a_batch_whose_account_is_gone_goes_to_review_and_its_refunds_wait(tmp_path: Path) -> None:
    clock = Clock()
    async with driven_engine(tmp_path, clock) as ctx:
        await ctx.store.accept([dataclasses.replace(request(), alipay_account="removed")], clock.now)
        batch = await ctx.store.create_batch("removed", 10, batch_nos(beijing_now().date()), clock.now)
        assert batch is not None
        assert await submit_once(ctx)  # handled: the loop goes on to the next batch
        (reviewed,) = await ctx.store.list_batches()
        (refund,) = await ctx.store.list_refunds()
        assert not await submit_once(ctx)  # not picked up again
    assert (reviewed.state, reviewed.code) == (BatchState.REVIEW, "ACCOUNT_NOT_CONFIGURED")
    assert refund.state is RefundState.BATCHED  # nothing was sent: no verdict on the money


async def test_a_batch_formed_yesterday_in_beijing_and_sent_today_is_abandoned_and_rebatched(tmp_path: Path) -> None:
    """Alipay refuses a batch_no not dated today (BATCH_NO_FORMAT_ERROR). On a first send that proves nothing
    was paid, so the refunds go back to be batched under a batch_no of today."""
    async with run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY)) as sandbox:
        now = time.time()  # the sandbox dates batch_nos by its own clock
        clock = Clock(now - DAY)
        async with driven_engine(tmp_path, clock, gateway_url=sandbox.url) as ctx:
            await ctx.store.accept([request()], clock.now - 60)
            assert await batch_once(ctx)
            clock.now = now
            assert await submit_once(ctx)
            (abandoned,) = await ctx.store.list_batches()
            (refund,) = await ctx.store.list_refunds()
            assert ctx.signals.batcher.is_set()
            assert await batch_once(ctx)
            assert await submit_once(ctx)
            fresh = next(b for b in await ctx.store.list_batches() if b.id != abandoned.id)
    assert (abandoned.state, abandoned.code) == (BatchState.ABANDONED, "BATCH_NO_FORMAT_ERROR")
    assert refund.state is RefundState.RECEIVED
    assert batch_no_date(fresh.batch_no) == beijing_now().date() and fresh.state is BatchState.SUBMITTED


async def test_an_accepted_batch_is_queried_after_first_query_after_seconds(tmp_path: Path) -> None:
    """The Alipay query loop is woken, and the batch becomes due for a query exactly first_query_after seconds on
    (its notify is dropped here, so only the query can settle it)."""
    async with run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, faults={"drop_notifies": True},
                                         trades=[TradeSeed(TRADE, Decimal("100.00"))])) as sandbox:
        clock = Clock(time.time())
        async with driven_engine(tmp_path, clock, gateway_url=sandbox.url,
                                 alipay_query={"first_query_after_seconds": 300}) as ctx:
            await ctx.store.accept([request(TRADE)], clock.now - 60)
            assert await batch_once(ctx)
            assert await submit_once(ctx)
            assert ctx.signals.alipay_query.is_set()
            assert await ctx.store.claim_batches_to_query(clock.now + 299, 10, 60) == []
            (due,) = await ctx.store.claim_batches_to_query(clock.now + 300, 10, 60)
    assert due.state is BatchState.SUBMITTED


def refusing(code: str, sent: list[str]) -> web.Application:
    """A gateway on 127.0.0.1 that refuses every batch with F/`code`, noting each batch_no sent."""

    async def gateway(request: web.Request) -> web.Response:
        sent.append((await request.post())["batch_no"])
        return web.Response(body=render_ack("F", code), content_type="text/xml")

    app = web.Application()
    app.router.add_post("/gateway.do", gateway)
    return app


async def test_a_batch_no_refused_on_its_own_day_fails_its_refunds(tmp_path: Path) -> None:
    """BATCH_NO_FORMAT_ERROR for a batch_no dated today (Beijing) is not the midnight case: Alipay refused it
    outright, so the batch is rejected, not abandoned and sent again under another batch_no."""
    sent: list[str] = []
    clock = Clock()
    async with serve(refusing("BATCH_NO_FORMAT_ERROR", sent)) as url, driven_engine(
        tmp_path, clock, gateway_url=url + "/gateway.do"
    ) as ctx:
        await ctx.store.accept([request()], clock.now - 60)
        assert await batch_once(ctx)
        assert await submit_once(ctx)
        (rejected,) = await ctx.store.list_batches()
        (refund,) = await ctx.store.list_refunds()
    assert (rejected.state, rejected.code) == (BatchState.REJECTED, "BATCH_NO_FORMAT_ERROR")
    assert (refund.state, refund.code) == (RefundState.FAILED, "BATCH_NO_FORMAT_ERROR")
    assert sent == [rejected.batch_no]


async def test_a_retryable_refusal_is_sent_again_after_the_retry_delay_under_the_same_batch_no(
    tmp_path: Path,
) -> None:
    """Alipay answers F/SYSTEM_ERROR (a gateway on 127.0.0.1 that answers only that): nothing failed, the batch
    waits RETRY_DELAY_SECONDS, then goes out again with its batch_no."""
    sent: list[str] = []
    clock = Clock()
    async with serve(refusing("SYSTEM_ERROR", sent)) as url, driven_engine(
        tmp_path, clock, gateway_url=url + "/gateway.do"
    ) as ctx:
        await ctx.store.accept([request()], clock.now - 60)
        assert await batch_once(ctx)
        assert await submit_once(ctx)
        (waiting,) = await ctx.store.list_batches()
        (refund,) = await ctx.store.list_refunds()
        clock.now += RETRY_DELAY_SECONDS - 1
        assert not await submit_once(ctx)
        clock.now += 1
        assert await submit_once(ctx)
    assert (waiting.state, waiting.code) == (BatchState.PENDING, "SYSTEM_ERROR")
    assert refund.state is RefundState.BATCHED
    assert sent == [waiting.batch_no] * 2
