"""One bad refund never holds the others: whatever the codec or Alipay refuses at submit time leaves its batch
with a code, and the genuine refunds beside it are paid once and reported. Over real loopback HTTP (the
sandbox as Alipay, a simulated shop), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.channels.mapi import gateway
from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.config import Config, EngineConfig, parse_config
from refund_adapter.engine.batcher import batch_once
from refund_adapter.engine.submitter import (
    INVALID_DETAIL,
    MAX_SUBMIT_ATTEMPTS_ON_ERROR,
    RETRY_DELAY_SECONDS,
    SUBMIT_ERROR,
    submit_once,
)
from refund_adapter.models import BatchState, RefundRequest, RefundState, ReportState
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.store import store_from_url
from refund_adapter.testing import ADMIN_HEADERS, AdapterLoop, adapter_loop, free_port, local_config, serve, wait_until
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

PARTNER = "2088101122136241"
MD5_KEY = "isolation-test-md5-key-0123456789"
SECRET = "whsec_" + base64.b64encode(b"isolation-test-shop-secret-32by!").decode()
SHOP = "shop-1"
DEADLINE = 20.0
GENUINE = [f"2026112522000000000{i:03d}" for i in range(1, 6)]


def request(refund_id: str, trade_no: str, amount: str = "10.00") -> RefundRequest:
    """A refund as the generic plugin hands it over (the core's intake is not in the way here)."""
    return RefundRequest(platform="generic", shop=SHOP, platform_refund_id=refund_id, order_id="o-" + refund_id,
                         trade_no=trade_no, amount=Decimal(amount), currency="CNY", reason="damaged",
                         alipay_account="main")


def config_for(store_url: str, **sections: Any) -> Callable[[int, str, str], Config]:
    def config(port: int, gateway_url: str, shop_url: str) -> Config:
        shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
        raw = local_config(Path("unused.db"), port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                           platforms={"generic": {"shops": [shop]}}, store={"url": store_url}, **sections)
        return parse_config(raw, env={})

    return config


def sandbox_config(**faults: Any) -> SandboxConfig:
    return SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0, faults=faults,
                         trades=[TradeSeed(trade_no, Decimal("50.00")) for trade_no in GENUINE])


@dataclass
class Run:
    loop: AdapterLoop
    shop: SimulatedShop

    async def reported(self, count: int) -> None:
        async def all_in() -> bool:
            return len(self.shop.results) >= count

        await wait_until(all_in, within=DEADLINE, what=f"{count} results at the shop")

    async def sandbox_batches(self) -> list[dict[str, Any]]:
        """What Alipay took, as its own admin API says."""
        async with self.loop.http.get(self.loop.sandbox.base_url + "/sandbox/batches") as resp:
            assert resp.status == 200
            batches: list[dict[str, Any]] = await resp.json()
            return batches

    def refunded(self) -> dict[str, int]:
        return {trade_no: trade.refund_count for trade_no, trade in self.loop.sandbox.state.ledger.trades.items()}


Start = Callable[..., contextlib.AbstractAsyncContextManager[Run]]


@pytest.fixture
def start(store_url: str) -> Start:
    """An adapter on `store_url` between the sandbox (with `faults`) and a shop; config sections optional."""

    @contextlib.asynccontextmanager
    async def running(faults: dict[str, Any] | None = None, **sections: Any) -> AsyncIterator[Run]:
        shop = SimulatedShop(SECRET)
        async with adapter_loop(config_for(store_url, **sections), sandbox=sandbox_config(**(faults or {})),
                                shop=shop, request_timeout=DEADLINE) as loop:
            yield Run(loop, shop)

    return running


async def test_a_detail_the_codec_refuses_leaves_its_batch_and_the_others_are_paid_once(
    start: Start,
) -> None:
    # Old data: stored before the intake checked trade numbers whole. It used to fail at every submit attempt,
    # holding its batch in `sending`, the genuine refunds with it.
    bad = request("bad", GENUINE[1] + "\n")
    genuine = [request(f"r{i}", trade_no) for i, trade_no in enumerate(GENUINE[:3])]
    async with start() as run:
        store = run.loop.store
        await store.accept([genuine[0], bad, *genuine[1:]], time.time())  # one commit: one batch
        run.loop.app[ENGINE].signals.batcher.set()
        await run.reported(4)
        sent = await run.sandbox_batches()
        (batch,) = await store.list_batches()
        refused = await store.find_refund("generic", SHOP, "bad")
    assert run.shop.results["bad"]["status"] == "failed" and run.shop.results["bad"]["code"] == INVALID_DETAIL
    assert all(run.shop.results[f"r{i}"]["status"] == "succeeded" for i in range(3))
    assert run.shop.deliveries == 4
    assert refused is not None and (refused.state, refused.code, refused.batch_no) == (
        RefundState.REJECTED, INVALID_DETAIL, None  # refused before it reached Alipay
    )
    assert refused.report_state is ReportState.DELIVERED
    # The batch was sent once, under its own batch_no, with the genuine refunds only; each paid once.
    assert [b["batch_no"] for b in sent] == [batch.batch_no]
    assert [d["trade_no"] for d in sent[0]["details"]] == GENUINE[:3]
    assert (batch.state, batch.submit_attempts) == (BatchState.COMPLETED, 1)
    assert run.refunded() == {trade_no: int(trade_no in GENUINE[:3]) for trade_no in GENUINE}


async def test_a_batch_the_old_code_left_jammed_in_sending_is_freed(store_url: str, start: Start) -> None:
    """Upgrading frees what the defect jammed: a batch claimed again and again, its lease run out."""
    bad = request("bad", GENUINE[0] + "\n")
    genuine = [request(f"r{i}", trade_no) for i, trade_no in enumerate(GENUINE[1:3], start=1)]
    long_ago = time.time() - 3600
    store = store_from_url(store_url)
    await store.open()
    try:
        await store.accept([bad, *genuine], long_ago)
        day = beijing_now(datetime.fromtimestamp(time.time(), UTC)).date()
        jammed = await store.create_batch("main", 1000, batch_nos(day), long_ago)
        assert jammed is not None
        for attempt in range(3):  # each attempt raised in the codec; the lease ran out; claimed again
            assert await store.claim_batch_to_submit(long_ago + attempt * 600, EngineConfig.lease_seconds) is not None
    finally:
        await store.close()
    async with start() as run:
        await run.reported(3)
        sent = await run.sandbox_batches()
        (batch,) = await run.loop.store.list_batches()
    assert run.shop.results["bad"]["code"] == INVALID_DETAIL
    assert [run.shop.results[f"r{i}"]["status"] for i in (1, 2)] == ["succeeded", "succeeded"]
    assert [(b["batch_no"], [d["trade_no"] for d in b["details"]]) for b in sent] == [
        (jammed.batch_no, GENUINE[1:3])
    ]
    assert batch.state is BatchState.COMPLETED
    assert run.refunded() == {trade_no: int(trade_no in GENUINE[1:3]) for trade_no in GENUINE}


async def test_a_batch_alipay_refuses_for_one_detail_is_split_until_that_detail_fails_alone(
    start: Start,
) -> None:
    culprit = GENUINE[2]
    # The batch forms when all five are in (max_details), so they share it whatever the webhooks' timing.
    async with start({"refuse_trade": culprit}, batching={"max_details": 5, "max_wait_seconds": 60}) as run:
        payloads = [{"refund_id": f"r{i}", "order_id": f"o{i}", "trade_no": trade_no, "amount": "10.00",
                     "currency": "CNY", "reason": "damaged"} for i, trade_no in enumerate(GENUINE)]
        for payload in payloads:
            assert await run.shop.send_refund(run.loop.http, run.loop.url, SHOP, payload) == 200
        await run.reported(5)
        sent = await run.sandbox_batches()
        batches = await run.loop.store.list_batches()
        failed = await run.loop.store.find_refund("generic", SHOP, "r2")
    assert run.shop.results["r2"]["status"] == "failed"
    assert run.shop.results["r2"]["code"] == "DETAIL_DATA_FORMAT_ERROR"
    assert all(run.shop.results[f"r{i}"]["status"] == "succeeded" for i in (0, 1, 3, 4))
    assert failed is not None and failed.state is RefundState.FAILED  # Alipay refused it
    # [0 1 2 3 4] refused -> [0 1] paid, [2 3 4] refused -> [2] refused alone, [3 4] paid: each batch_no new.
    by_state = sorted((b.state.value, len(b.details)) for b in batches)
    assert by_state == [("abandoned", 0), ("abandoned", 0), ("completed", 2), ("completed", 2), ("rejected", 1)]
    assert len({b.batch_no for b in batches}) == 5
    assert sorted(d["trade_no"] for b in sent for d in b["details"]) == [t for t in GENUINE if t != culprit]
    assert run.refunded() == {trade_no: int(trade_no != culprit) for trade_no in GENUINE}


async def test_one_culprit_among_many_costs_a_logarithmic_number_of_sends(tmp_path: Path) -> None:
    """Bisection's bound: a batch of n refused for one detail is sent at most 1 + 2*ceil(log2 n) times in all.
    n is Alipay's largest batch (§1.3)."""
    n = 1000
    trades = [f"20261125230000000{i:04d}" for i in range(n)]
    culprit = trades[137]
    sandbox = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0, faults={"refuse_trade": culprit},
                            trades=[TradeSeed(trade_no, Decimal("50.00")) for trade_no in trades])
    shop = SimulatedShop(SECRET)
    async with adapter_loop(config_for(f"sqlite:///{tmp_path / 'r.db'}"), sandbox=sandbox, shop=shop,
                            request_timeout=DEADLINE) as loop:
        run = Run(loop, shop)
        await loop.store.accept([request(f"r{i}", trade_no) for i, trade_no in enumerate(trades)], time.time())
        loop.app[ENGINE].signals.batcher.set()
        await run.reported(n)
        batches = await loop.store.list_batches(limit=1000)
    sends = sum(batch.submit_attempts for batch in batches)
    print(f"isolation: 1 culprit in a batch of {n}: {sends} sends, {len(batches)} batches")
    assert sends <= 1 + 2 * math.ceil(math.log2(n)) and all(batch.submit_attempts == 1 for batch in batches)
    assert [r["status"] for r in shop.results.values()].count("succeeded") == n - 1
    assert shop.results["r137"]["code"] == "DETAIL_DATA_FORMAT_ERROR"
    assert run.refunded() == {trade_no: int(trade_no != culprit) for trade_no in trades}


async def test_a_submit_that_keeps_raising_ends_in_review_after_bounded_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the codec (injected: encoding raises TypeError) never loops: each attempt is put back with a
    delay, and after MAX_SUBMIT_ATTEMPTS_ON_ERROR the batch waits in review, visible, its refunds untouched."""

    def broken(*_args: object, **_kwargs: object) -> str:
        raise TypeError("a codec bug")

    monkeypatch.setattr(gateway, "encode_detail_data", broken)
    now = [1_780_000_000.0]
    async with run_sandbox(sandbox_config()) as sandbox, serve(SimulatedShop(SECRET).app()) as shop_url:
        config = config_for(f"sqlite:///{tmp_path / 'r.db'}")(free_port(), sandbox.url, shop_url)
        app = create_app(config, clock=lambda: now[0], run_engine=False)
        async with serve(app) as url, aiohttp.ClientSession() as http:
            ctx = app[ENGINE]
            await ctx.store.accept([request("r1", GENUINE[0]), request("r2", GENUINE[1])], now[0])
            now[0] += 1
            assert await batch_once(ctx)
            attempts = 0
            while await submit_once(ctx):
                attempts += 1
                (batch,) = await ctx.store.list_batches()
                assert batch.code == SUBMIT_ERROR and batch.submit_attempts == attempts
                assert not await submit_once(ctx)  # put back with a delay, not at once
                now[0] += RETRY_DELAY_SECONDS + 1
            refunds = await ctx.store.list_refunds()
            async with http.get(url + "/-/batches?state=review", headers=ADMIN_HEADERS) as resp:  # the operator sees
                in_review = await resp.json()
    assert attempts == MAX_SUBMIT_ATTEMPTS_ON_ERROR
    assert [(b["code"], b["submit_attempts"], b["refunds"]) for b in in_review] == [
        (SUBMIT_ERROR, attempts, {"batched": 2})]
    assert (batch.state, batch.code) == (BatchState.REVIEW, SUBMIT_ERROR)
    assert {r.state for r in refunds} == {RefundState.BATCHED}  # not failed: an operator decides
    assert sandbox.state.batches == {}
