"""`refund-adapter demo`: the Alipay sandbox, the adapter and a simulated shop in one process, on free
loopback ports with a temporary SQLite file, pushing N refunds through the whole loop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from refund_adapter_generic.shop import SimulatedShop

from .config import Config, parse_config
from .money import CURRENCY
from .plugins import create_plugin_manager
from .sandbox import SandboxConfig, TradeSeed, run_sandbox
from .testing import free_port, serve, wait_until
from .web.app import create_app
from .web.keys import ENGINE

PARTNER = "2088101122136241"
SHOP_ID = "demo-shop"
POOR_SELLER = "2088000000000999"  # a seller account with no balance: TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH
CONCURRENT_WEBHOOKS = 32


@dataclass(frozen=True)
class Scenario:
    """What refund i looks like: scripted failures every so often, as in a real shop's day."""

    index: int

    @property
    def trade_no(self) -> str:
        return f"2026112522{self.index:010d}"

    @property
    def amount(self) -> Decimal:
        return Decimal(10 + self.index % 90) + Decimal("0.50")

    @property
    def seed(self) -> TradeSeed:
        closed = self.index % 40 == 7
        poor = self.index % 40 == 23
        return TradeSeed(
            trade_no=self.trade_no,
            amount=self.amount * 2,
            status="closed" if closed else "paid",
            seller_id=POOR_SELLER if poor else None,
            seller_balance=Decimal("0") if poor else None,
        )

    @property
    def expected_code(self) -> str:
        if self.index % 40 == 7:
            return "TRADE_HAS_CLOSED"
        if self.index % 40 == 23:
            return "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"
        return "SUCCESS"

    def payload(self) -> dict[str, Any]:
        return {
            "refund_id": f"r{self.index}",
            "order_id": f"o{self.index}",
            "trade_no": self.trade_no,
            "amount": str(self.amount),
            "currency": CURRENCY,
            "reason": f"退款 #{self.index} | size^wrong",  # forbidden characters: cleaned, not refused
            "paid_amount": str(self.amount * 2),
        }


def demo_config(
    port: int,
    gateway_url: str,
    shop_url: str,
    secret: str,
    md5_key: str,
    store_url: str,
    first_query_after: float,
    **sections: Any,
) -> Config:
    """The demo's configuration; `sections` replace whole top-level sections (for tests)."""
    return parse_config(
        {
            "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
            "store": {"url": store_url},
            "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": md5_key,
                                              "gateway_url": gateway_url}}},
            "batching": {"max_details": 1000, "max_wait_seconds": 0.5},
            "reporter": {"base_delay_seconds": 0.2, "max_delay_seconds": 2, "give_up_after_seconds": 600},
            "alipay_query": {"first_query_after_seconds": first_query_after, "schedule_seconds": [2, 5, 10, 30],
                             "interval_seconds": 0.5},
            "platform_poll": {"interval_seconds": 0.5},
            "platforms": {"generic": {"shops": [{"id": SHOP_ID, "secret": secret, "callback_url": shop_url,
                                                  "alipay_account": "main"}]}},
        }
        | sections,
        env={},
    )


@dataclass(frozen=True)
class DemoSummary:
    refunds: int
    by_state: dict[str, int]
    reported: int
    unexpected: int  # refunds whose final code differs from the scripted one
    paid_twice: int  # trades the sandbox refunded more than once
    batches: int
    elapsed_s: float

    @property
    def ok(self) -> bool:
        final = sum(self.by_state.get(s, 0) for s in ("succeeded", "failed", "rejected"))
        return final == self.refunds == self.reported and self.unexpected == 0 and self.paid_twice == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "refunds": self.refunds,
            "succeeded": self.by_state.get("succeeded", 0),
            "failed": self.by_state.get("failed", 0),
            "rejected": self.by_state.get("rejected", 0),
            "reported": self.reported,
            "unexpected_results": self.unexpected,
            "paid_twice": self.paid_twice,
            "batches": self.batches,
            "elapsed_s": round(self.elapsed_s, 3),
            "refunds_per_s": round(self.refunds / self.elapsed_s, 1) if self.elapsed_s else None,
            "ok": self.ok,
        }


@contextlib.asynccontextmanager
async def _store_url(store_url: str | None) -> AsyncIterator[str]:
    if store_url is not None:
        yield store_url
        return
    with tempfile.TemporaryDirectory(prefix="refund-adapter-demo-") as folder:
        yield f"sqlite:///{Path(folder) / 'refunds.db'}"


async def run_demo(
    refunds: int = 200,
    *,
    store_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    deadline_s: float | None = None,
    faults: Mapping[str, Any] | None = None,
    first_query_after_seconds: float = 10.0,
    extra_plugins: Sequence[object] = (),
) -> DemoSummary:
    """Push `refunds` refunds through sandbox, adapter and shop; return when all are reported or on timeout."""
    say = progress or (lambda _line: None)
    md5_key = secrets.token_hex(16)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    scenarios = [Scenario(i) for i in range(refunds)]
    sandbox_config = SandboxConfig(
        partner=PARTNER, md5_key=md5_key, time_scale=100.0,
        trades=[s.seed for s in scenarios],
        faults=faults or {},
    )
    shop = SimulatedShop(secret)
    async with (
        _store_url(store_url) as url,
        run_sandbox(sandbox_config) as sandbox,
        serve(shop.app()) as shop_url,
    ):
        port = free_port()
        config = demo_config(port, sandbox.url, shop_url + "/callback", secret, md5_key, url, first_query_after_seconds)
        pm = create_plugin_manager(config.plugins_dir)
        for plugin in extra_plugins:
            pm.register(plugin)
        app = create_app(config, pm=pm)
        async with serve(app, port=port) as adapter_url, aiohttp.ClientSession() as session:
            started = time.perf_counter()
            say(f"sandbox {sandbox.url}, adapter {adapter_url}, shop {shop_url}: sending {refunds} refunds")
            limit = asyncio.Semaphore(CONCURRENT_WEBHOOKS)

            async def send(scenario: Scenario) -> int:
                async with limit:
                    return await shop.send_refund(session, adapter_url, SHOP_ID, scenario.payload())

            statuses = Counter(await asyncio.gather(*(send(s) for s in scenarios)))
            say(f"webhooks answered: {dict(statuses)}")
            store = app[ENGINE].store
            last = [-1]

            async def all_reported() -> bool:
                done = (await store.counts())["reports"].get("delivered", 0)
                if done != last[0] and (done == refunds or done // 100 != last[0] // 100):
                    say(f"reported {done}/{refunds}")
                last[0] = done
                return done >= refunds and len(shop.results) >= refunds

            with contextlib.suppress(TimeoutError):
                await wait_until(all_reported, within=deadline_s or 60 + refunds / 20, what="every refund reported")
            elapsed = time.perf_counter() - started
            counts = await store.counts()
    expected = {f"r{s.index}": s.expected_code for s in scenarios}
    unexpected = sum(1 for rid, result in shop.results.items() if (result["code"] or "SUCCESS") != expected[rid])
    unexpected += sum(1 for rid in expected if rid not in shop.results)
    return DemoSummary(
        refunds=refunds,
        by_state=counts["refunds"],
        reported=counts["reports"].get("delivered", 0),
        unexpected=unexpected,
        paid_twice=sum(1 for trade in sandbox.state.ledger.trades.values() if trade.refund_count > 1),
        batches=sum(counts["batches"].values()),
        elapsed_s=elapsed,
    )
