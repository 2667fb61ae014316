"""A batch whose outcome Alipay never tells us stays `unknown` (never `failed`) and ends in review; a query answer
that contradicts a recorded result changes nothing but flags the refund for review."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from refund_adapter.alipay.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.demo import PARTNER, SHOP_ID, demo_config
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.reconciler import reconcile_batch
from refund_adapter.engine.submitter import submit_once
from refund_adapter.models import BatchState, DetailResult, RefundState, ReportState
from refund_adapter.testing import SimulatedShop, free_port, metric_value, serve, wait_until
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

MD5_KEY = "reconcilertestkey0123456789abcde"
SECRET = "whsec_" + base64.b64encode(b"reconciler-test-secret!!").decode()
TRADE = "2026112500000042"


async def test_a_gateway_that_never_answers_leaves_the_refund_unknown_then_in_review(tmp_path: Path) -> None:
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, faults={"answer_5xx": True},
                                   trades=[TradeSeed(TRADE, Decimal("50.00"))])
    shop = SimulatedShop(SECRET)
    async with run_sandbox(sandbox_config) as sandbox, serve(shop.app()) as shop_url:
        port = free_port()
        config = demo_config(
            port, sandbox.url, shop_url + "/callback", SECRET, MD5_KEY, f"sqlite:///{tmp_path / 'r.db'}", 0.1,
            batching={"max_wait_seconds": 0.1},
            reconciler={"first_query_after_seconds": 0.1, "schedule_seconds": [0.1, 0.1], "interval_seconds": 0.1},
        )
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
    assert sandbox.state.trades[TRADE].refund_count == 0


async def test_a_query_answer_contradicting_a_recorded_result_changes_nothing_but_flags_the_refund(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two refunds in one batch; an earlier (wrong) verdict recorded TRADE_HAS_CLOSED for the first, while
    Alipay paid both. The query applies the second's result, and flags the first instead of overwriting it."""
    trades = {"2026112500000051": Decimal("10.00"), "2026112500000052": Decimal("20.00")}
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0,
                                   faults={"drop_notifies": True},
                                   trades=[TradeSeed(trade, Decimal("50.00")) for trade in trades])
    shop = SimulatedShop(SECRET)
    async with run_sandbox(sandbox_config) as sandbox, serve(shop.app()) as shop_url:
        port = free_port()
        config = demo_config(port, sandbox.url, shop_url + "/callback", SECRET, MD5_KEY,
                             f"sqlite:///{tmp_path / 'r.db'}", 600)
        skew = [0.0]  # moved on once both refunds are in, so their batch is due at once
        app = create_app(config, clock=lambda: time.time() + skew[0], run_engine=False)  # the test runs each step
        async with serve(app, port=port) as url, aiohttp.ClientSession() as session:
            ctx = app[ENGINE]
            for trade, amount in trades.items():
                payload = {"refund_id": f"r-{trade}", "order_id": "o", "trade_no": trade, "amount": str(amount),
                           "currency": "CNY", "reason": "paid twice?"}
                assert await shop.send_refund(session, url, SHOP_ID, payload) == 200
            skew[0] = config.batching.max_wait_seconds
            assert await batch_once(ctx) and await submit_once(ctx)
            (batch,) = await ctx.store.list_batches()
            assert batch.state is BatchState.SUBMITTED and len(batch.details) == 2

            async def paid_by_alipay() -> bool:
                return all(sandbox.state.trades[trade].refund_count == 1 for trade in trades)

            await wait_until(paid_by_alipay, within=10, what="both refunds paid in the sandbox")
            first, second = trades
            wrong = DetailResult(first, trades[first], "TRADE_HAS_CLOSED")
            await ctx.store.record_results(batch.id, [wrong], ctx.clock(), notify_id=None, kind="refund")
            caplog.clear()
            await reconcile_batch(ctx, batch)
            flagged = await ctx.store.find_refund("generic", SHOP_ID, f"r-{first}")
            paid = await ctx.store.find_refund("generic", SHOP_ID, f"r-{second}")
            in_review = await metric_value(session, url, "refund_adapter_refunds_in_review")
            anomalies = await metric_value(session, url, "refund_adapter_result_anomalies_total", source="query")
            async with session.get(f"{url}/-/refunds?review=true") as resp:
                listed = await resp.json()
    assert flagged is not None and (flagged.state, flagged.code) == (RefundState.FAILED, "TRADE_HAS_CLOSED")
    assert flagged.review == "query: SUCCESS, but failed TRADE_HAS_CLOSED is recorded"
    assert paid is not None and (paid.state, paid.code, paid.review) == (RefundState.SUCCEEDED, "SUCCESS", None)
    assert [(r["id"], r["review"]) for r in listed] == [(flagged.id, flagged.review)]
    assert (in_review, anomalies) == (1, 1)
    (warning,) = [r for r in caplog.records if "flagged for review" in r.getMessage()]
    assert warning.levelname == "WARNING" and batch.batch_no in warning.getMessage()
