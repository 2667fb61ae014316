"""A batch whose outcome Alipay never tells us stays `unknown` (never `failed`) and ends in review."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path

import aiohttp

from refund_adapter.alipay.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.demo import PARTNER, SHOP_ID, demo_config
from refund_adapter.models import BatchState, RefundState, ReportState
from refund_adapter.testing import SimulatedShop, free_port, serve, wait_until
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
