"""`serve` killed with SIGKILL at each dangerous moment, then restarted: every refund is paid exactly once at
the sandbox and its result reaches the shop. The sandbox and the shop live in the test process and outlive
the killed adapter, as Alipay and a real shop would."""

from __future__ import annotations

import asyncio
import base64
import signal
import sqlite3
from asyncio.subprocess import Process
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import yaml
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter import failpoints
from refund_adapter.chaos import SERVE, ServeProcess
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import free_port, serve, wait_until

PARTNER = "2088101122136241"
MD5_KEY = "crashtestkey0123456789abcdefghij"
SECRET = "whsec_" + base64.b64encode(b"crash-test-secret-bytes!").decode()
REFUNDS = 4


@dataclass
class Harness:
    sandbox: RunningSandbox
    shop: SimulatedShop
    shop_url: str
    tmp: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.tmp / "refunds.db"

    def write_config(self) -> Path:
        config = {
            "server": {"host": "127.0.0.1", "port": self.port, "public_url": self.url},
            "store": {"url": f"sqlite:///{self.db}"},
            "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                              "gateway_url": self.sandbox.url}}},
            "batching": {"max_wait_seconds": 0.2},
            "reporter": {"base_delay_seconds": 0.1, "max_delay_seconds": 0.5},
            "reconciler": {"first_query_after_seconds": 30, "interval_seconds": 0.5},
            "platforms": {"generic": {"shops": [{"id": "s1", "secret": SECRET, "callback_url": self.shop_url,
                                                  "alipay_account": "main"}]}},
        }
        path = self.tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config), "utf-8")
        return path

    async def start(self, crash_at: str | None) -> Process:
        instance = ServeProcess(self.write_config(), self.port)
        await instance.start(crash_at)
        assert instance.process is not None
        return instance.process


def payload(i: int) -> dict[str, str]:
    return {"refund_id": f"r{i}", "order_id": f"o{i}", "trade_no": f"20261125{i:08d}", "amount": "12.50",
            "currency": "CNY", "reason": "crash test"}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    trades = [TradeSeed(trade_no=payload(i)["trade_no"], amount=Decimal("100.00")) for i in range(REFUNDS)]
    config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades)
    shop = SimulatedShop(SECRET)
    async with run_sandbox(config) as sandbox, serve(shop.app()) as shop_url:
        yield Harness(sandbox, shop, shop_url + "/callback", tmp_path, free_port())


async def _send_all(harness: Harness) -> list[int | None]:
    """Each webhook's status, None when the connection died without an answer."""
    statuses: list[int | None] = []
    async with aiohttp.ClientSession() as session:
        for i in range(REFUNDS):
            try:
                statuses.append(await harness.shop.send_refund(session, harness.url, "s1", payload(i)))
            except aiohttp.ClientError:
                statuses.append(None)
    return statuses


async def _wait_exit(process: Process) -> int:
    return await asyncio.wait_for(process.wait(), 20)


async def _stop(process: Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 20)


@pytest.mark.parametrize("crash_at", failpoints.ALL)
async def test_sigkill_then_restart_pays_each_refund_exactly_once_and_reports_it(
    harness: Harness, crash_at: str
) -> None:
    first = await harness.start(crash_at)
    try:
        statuses = await _send_all(harness)
        assert await _wait_exit(first) == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    if crash_at == failpoints.AFTER_ACCEPT:
        assert statuses[0] is None  # killed before the 2xx: the shop never saw an acknowledgement
    second = await harness.start(None)
    try:
        # A platform re-sends what was not acknowledged; replays of acknowledged ones must change nothing.
        assert set(await _send_all(harness)) == {200}

        async def all_reported() -> bool:
            return len(harness.shop.results) == REFUNDS and _delivered(harness.db) == REFUNDS

        await wait_until(all_reported, within=30, what="every refund reported")
    finally:
        assert await _stop(second) == 0  # SIGTERM: drained and stopped cleanly
    sent = Counter(d["trade_no"] for b in harness.sandbox.state.batches.values() for d in _details(b))
    assert sent == Counter({payload(i)["trade_no"]: 1 for i in range(REFUNDS)})
    assert all(trade.refund_count == 1 for trade in harness.sandbox.state.ledger.trades.values())
    assert {r["refund_id"]: r["status"] for r in harness.shop.results.values()} == {
        f"r{i}": "succeeded" for i in range(REFUNDS)
    }


def _details(batch: object) -> list[dict[str, str]]:
    return batch.to_json()["details"]  # type: ignore[attr-defined]


def _delivered(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM refunds WHERE report_state = 'delivered'").fetchone()[0])


async def test_a_second_process_on_the_same_sqlite_file_is_refused(harness: Harness) -> None:
    first = await harness.start(None)
    try:
        second = await asyncio.create_subprocess_exec(
            *SERVE, "--config", str(harness.write_config()),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode != 0
        assert b"in use by another refund-adapter process" in stderr
    finally:
        assert await _stop(first) == 0
