"""Alipay's day is Beijing's (UTC+8): a `batch_no` must start with today's date there and `refund_date` is the
time of the request there. The engine and the sandbox share one fake clock here, so these tests stand at any
moment (Beijing midnight is 16:00 UTC) whatever the hour they run, and drive the engine's steps one by one over
real HTTP, the real SQLite store and the real sandbox, so that a batch can be formed before midnight and sent
after it.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.demo import PARTNER, SHOP_ID, demo_config
from refund_adapter.engine.alipay_query import query_once
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.reporter import report_once
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.engine.submitter import submit_once
from refund_adapter.models import BatchState, RefundState
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import free_port, serve, wait_until
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

MD5_KEY = "midnighttestkey0123456789abcdefg"
SECRET = "whsec_" + base64.b64encode(b"beijing-midnight-secret!").decode()
FIRST_QUERY_AFTER = 60.0
REFUNDS = 3


class FakeClock:
    """Unix seconds that move only when told: the engine's and the sandbox's one clock."""

    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Midnight:
    clock: FakeClock
    ctx: EngineContext
    sandbox: RunningSandbox
    shop: SimulatedShop
    url: str
    http: aiohttp.ClientSession

    async def refunds_arrive(self) -> None:
        for i in range(REFUNDS):
            payload = {"refund_id": f"r{i}", "order_id": f"o{i}", "trade_no": trade(i), "amount": "10.00",
                       "currency": "CNY", "reason": "midnight"}
            assert await self.shop.send_refund(self.http, self.url, SHOP_ID, payload) == 200

    async def batch(self) -> str:
        """Form one batch now; its batch_no."""
        assert await batch_once(self.ctx)
        (batch,) = await self.ctx.store.list_batches(state=BatchState.PENDING)
        return batch.batch_no

    async def settle(self) -> None:
        """Wait for Alipay's notify, then report every result to the shop."""

        async def succeeded() -> bool:
            return len(await self.ctx.store.list_refunds(state=RefundState.SUCCEEDED)) == REFUNDS

        await wait_until(succeeded, within=10, what="every refund succeeded")
        while await report_once(self.ctx):
            pass

    def ledger(self) -> list[tuple[str, str, list[str]]]:
        """(batch_no, refund_date, trade numbers) of each batch the sandbox received."""
        return [(b["batch_no"], b["refund_date"], [d["trade_no"] for d in b["details"]])
                for b in (batch.to_json() for batch in self.sandbox.state.batches.values())]


def trade(i: int) -> str:
    return f"20261231000000{i:02d}"


@contextlib.asynccontextmanager
async def standing_at(folder: Path, moment: str, faults: dict[str, Any] | None = None) -> AsyncIterator[Midnight]:
    """The adapter (its engine steps driven by the test) and the sandbox on one fake clock set to `moment` (UTC)."""
    clock = FakeClock(datetime.fromisoformat(moment).replace(tzinfo=UTC))
    trades = [TradeSeed(trade(i), Decimal("50.00")) for i in range(REFUNDS)]
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades, clock=clock,
                                   faults=faults or {})
    shop = SimulatedShop(SECRET)
    async with run_sandbox(sandbox_config) as sandbox, serve(shop.app()) as shop_url:
        port = free_port()
        config = demo_config(port, sandbox.url, shop_url + "/callback", SECRET, MD5_KEY,
                             f"sqlite:///{folder / 'refunds.db'}", FIRST_QUERY_AFTER)
        app = create_app(config, clock=clock, run_engine=False)
        async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
            yield Midnight(clock, app[ENGINE], sandbox, shop, url, http)


async def test_a_batch_formed_before_beijing_midnight_and_first_sent_after_it_is_paid_once_under_the_new_day(
    tmp_path: Path,
) -> None:
    async with standing_at(tmp_path, "2026-12-31T15:59:58") as midnight:  # 23:59:58 in Beijing
        await midnight.refunds_arrive()
        midnight.clock.advance(1)
        formed = await midnight.batch()
        assert formed.startswith("20261231")
        midnight.clock.advance(2)  # 00:00:01 on 1 January in Beijing, still 31 December in UTC
        assert await submit_once(midnight.ctx)
        # Alipay refuses yesterday's batch_no; it never took that batch, so its refunds are batched again.
        assert [(b.batch_no, b.state) for b in await midnight.ctx.store.list_batches()] == [
            (formed, BatchState.ABANDONED)
        ]
        renewed = await midnight.batch()
        assert renewed.startswith("20270101")
        assert await submit_once(midnight.ctx)
        await midnight.settle()
    assert midnight.ledger() == [(renewed, "2027-01-01 00:00:01", [trade(i) for i in range(REFUNDS)])]
    assert {t.trade_no: t.refund_count for t in midnight.sandbox.state.ledger.trades.values()} == {
        trade(i): 1 for i in range(REFUNDS)
    }
    assert {r["refund_id"]: (r["status"], r["batch_no"]) for r in midnight.shop.results.values()} == {
        f"r{i}": ("succeeded", renewed) for i in range(REFUNDS)
    }


async def test_a_batch_sent_before_beijing_midnight_is_resolved_after_it_by_the_query(tmp_path: Path) -> None:
    async with standing_at(tmp_path, "2026-12-31T15:59:58", faults={"drop_notifies": True}) as midnight:
        await midnight.refunds_arrive()
        midnight.clock.advance(1)
        sent = await midnight.batch()
        assert await submit_once(midnight.ctx)  # accepted at 23:59:59; its notify is lost
        midnight.clock.advance(FIRST_QUERY_AFTER)  # 00:00:59 on 1 January: the query names yesterday's batch_no
        assert await query_once(midnight.ctx)
        await midnight.settle()
    assert midnight.ledger() == [(sent, "2026-12-31 23:59:59", [trade(i) for i in range(REFUNDS)])]
    assert sent.startswith("20261231")
    assert {r["refund_id"]: r["status"] for r in midnight.shop.results.values()} == {
        f"r{i}": "succeeded" for i in range(REFUNDS)
    }


@pytest.mark.parametrize(
    ("moment", "beijing_day", "refund_date"),
    [
        ("2026-12-07T08:00:00", "20261207", "2026-12-07 16:00:00"),
        ("2026-12-07T15:59:59", "20261207", "2026-12-07 23:59:59"),
        ("2026-12-07T16:00:00", "20261208", "2026-12-08 00:00:00"),  # from here UTC's day is still the 7th...
        ("2026-12-07T23:59:59", "20261208", "2026-12-08 07:59:59"),  # ...to here: a batch_no dated in UTC is refused
        ("2026-12-08T00:00:00", "20261208", "2026-12-08 08:00:00"),
    ],
)
async def test_batch_no_and_refund_date_are_dated_in_beijing_whatever_the_hour(
    tmp_path: Path, moment: str, beijing_day: str, refund_date: str
) -> None:
    async with standing_at(tmp_path, moment) as midnight:
        midnight.clock.advance(-1)
        await midnight.refunds_arrive()
        midnight.clock.advance(1)
        batch_no = await midnight.batch()  # formed and sent at `moment`
        assert await submit_once(midnight.ctx)
        await midnight.settle()
    assert batch_no.startswith(beijing_day)
    assert midnight.ledger() == [(batch_no, refund_date, [trade(i) for i in range(REFUNDS)])]
