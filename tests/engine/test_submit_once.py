"""One submit step against the sandbox: a batch for an account no longer configured waits for an operator, and
a batch formed before Beijing midnight but first sent after it is abandoned and its refunds batched again."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from refund_adapter.alipay.codec import batch_no_date, beijing_now
from refund_adapter.alipay.sandbox import SandboxConfig, run_sandbox
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.submitter import submit_once
from refund_adapter.models import BatchState, RefundState

from .kit import MD5_KEY, PARTNER, Clock, driven_engine, request

DAY = 86400.0


async def test_a_batch_whose_account_is_gone_goes_to_review_and_its_refunds_wait(tmp_path: Path) -> None:
    clock = Clock()
    async with driven_engine(tmp_path, clock) as ctx:
        await ctx.store.accept([dataclasses.replace(request(), alipay_account="removed")], clock.now)
        batch = await ctx.store.create_batch("removed", 10, beijing_now().date(), clock.now)
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
