"""The kit of the fault matrix: the whole loop (signed webhook -> store -> batch -> Alipay sandbox -> notify or
query -> report to the shop) on real loopback ports, one fault at a time, and the invariants checked after each.

After every cell: each acknowledged refund is in the sandbox's ledger (`GET /sandbox/batches`) exactly once and
paid once (`GET /sandbox/trades`), final in the store, reported to the shop exactly once, and nothing is left
without a final state or outside a visible dead letter. Each cell prints one line for docs/reliability.md.

Time is scaled by SCALE: the sandbox's notify retry schedule (4 minutes first) and the reporter's backoff,
give-up window and cap are the real defaults divided by it, so an hour passes in a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from refund_adapter_generic.shop import SimulatedShop, signed_generic_webhook

from refund_adapter import hookimpl
from refund_adapter.config import Config, ReporterConfig, parse_config
from refund_adapter.models import Refund, RefundState
from refund_adapter.plugins import create_plugin_manager
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed
from refund_adapter.store import RefundStore
from refund_adapter.testing import AdapterLoop, adapter_loop, local_config, wait_until
from tests import figures

PARTNER = "2088101122136241"
MD5_KEY = "fault-matrix-md5-key-0123456789ab"
SECRET = "whsec_" + base64.b64encode(b"fault-matrix-shop-secret-32byte!").decode()
SHOP = "shop-1"
REFUNDS = 6
PER_BATCH = 3  # so every cell sends two batches: r0-r2 and r3-r5, formed when full (BATCH_WHEN_FULL)
BATCH_WHEN_FULL = {"max_details": PER_BATCH, "max_wait_seconds": 60}
BATCH_AT_ONCE = {"max_details": PER_BATCH, "max_wait_seconds": 0.05}  # for cells that send fewer at first
SCALE = 3600.0  # one hour of the service's time is one second of the test's
HOUR = 3600 / SCALE
HTTP_TIMEOUT = 3.0  # the adapter's client timeout (generous: the machine may be loaded); the hang cells hang longer
DEADLINE = 40.0  # for any awaited condition: generous, the machine is shared
# Queries early and often, so a batch no notify resolves is queried within a second.
QUERYING = {"first_query_after_seconds": 0.3, "schedule_seconds": [0.3, 0.6, 1.2], "interval_seconds": 0.1}
# Three queries within about 0.3 s, for the cells about what comes after the whole schedule.
QUICK_QUERIES = {"first_query_after_seconds": 0.1, "schedule_seconds": [0.1, 0.1], "interval_seconds": 0.05}
# No query before a minute: the cell's notifies alone must resolve its batches.
NOT_QUERYING = {"first_query_after_seconds": 60, "interval_seconds": 0.1}


def trade_no(i: int) -> str:
    return f"2026120710{i:010d}"


def payload(i: int) -> dict[str, str]:
    return {"refund_id": f"r{i}", "order_id": f"o{i}", "trade_no": trade_no(i), "amount": "10.50",
            "currency": "CNY", "reason": "fault matrix", "paid_amount": "100.00"}


@dataclass
class Transitions:
    """A plugin recording every committed `refund_state_changed` as (refund id, old state, new state)."""

    seen: list[tuple[str, RefundState | None, RefundState]] = field(default_factory=list)

    @hookimpl
    def refund_state_changed(self, refund: Refund, old_state: RefundState | None, new_state: RefundState) -> None:
        self.seen.append((refund.request.platform_refund_id, old_state, new_state))

    def finals(self) -> dict[str, list[RefundState | None]]:
        """Per refund, the state each final transition came from (one entry when it was recorded once)."""
        found: dict[str, list[RefundState | None]] = {}
        for refund_id, old, new in self.seen:
            if new.is_final:
                found.setdefault(refund_id, []).append(old)
        return found

    def went_through(self, state: RefundState) -> set[str]:
        return {refund_id for refund_id, _, new in self.seen if new is state}


@dataclass
class GatedShop(SimulatedShop):
    """A shop that holds every result callback until `gate` opens: meanwhile a test can break the store, so that
    the adapter learns of the delivery while it cannot record it."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    async def _callback(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.gate.wait()
        return await super()._callback(request)


@dataclass
class FaultLoop:
    """One cell: the loop running, what was acknowledged, and notes for its summary line."""

    cell: str
    backend: str
    adapter: AdapterLoop
    shop: SimulatedShop
    transitions: Transitions
    config: pytest.Config
    started: float = field(default_factory=time.monotonic)
    acknowledged: set[str] = field(default_factory=set)  # refund ids answered 2xx
    refusals: dict[int, tuple[str, str]] = field(default_factory=dict)  # refund index -> (content type, body)
    notes: list[str] = field(default_factory=list)

    @property
    def store(self) -> RefundStore:
        return self.adapter.store

    @property
    def sandbox(self) -> RunningSandbox:
        return self.adapter.sandbox

    @property
    def http(self) -> aiohttp.ClientSession:
        return self.adapter.http

    async def faults(self, **switches: Any) -> None:
        async with self.http.post(self.sandbox.base_url + "/sandbox/faults", json=switches) as resp:
            assert resp.status == 200, await resp.text()

    async def send(self, *indices: int) -> dict[int, int]:
        """POST the refunds' webhooks one by one; each one's status (a 2xx counts as acknowledged, the body of
        anything else is kept in `refusals`)."""
        statuses = {}
        for i in indices or range(REFUNDS):
            headers, body = signed_generic_webhook(SECRET, payload(i), f"msg-r{i}")
            async with self.http.post(f"{self.adapter.url}/webhooks/generic/{SHOP}", data=body,
                                      headers=headers) as resp:
                statuses[i] = resp.status
                if 200 <= resp.status < 300:
                    self.acknowledged.add(f"r{i}")
                else:
                    self.refusals[i] = (resp.headers.get("Content-Type", ""), await resp.text())
        return statuses

    async def sandbox_json(self, what: str) -> Any:
        async with self.http.get(f"{self.sandbox.base_url}/sandbox/{what}") as resp:
            assert resp.status == 200
            return await resp.json()

    async def wait(self, what: str, predicate: Callable[[], bool | Awaitable[bool]]) -> None:
        """Until `predicate` (plain or async) holds; a TimeoutError naming the cell and `what` after DEADLINE."""

        async def holds() -> bool:
            result = predicate()
            return await result if inspect.isawaitable(result) else result

        await wait_until(holds, within=DEADLINE, what=f"{self.cell} ({self.backend}): {what}")

    async def settled(self) -> None:
        """Until every acknowledged refund is final and reported, and the shop has every result."""

        async def done() -> bool:
            counts = await self.store.counts()
            delivered = counts["reports"].get("delivered", 0)
            return delivered == len(self.acknowledged) and set(self.shop.results) == self.acknowledged

        await self.wait("every refund final and reported", done)

    async def verify(self) -> None:
        """The matrix's invariants; then the cell's summary line."""
        count = len(self.acknowledged)
        assert count == REFUNDS, f"only {sorted(self.acknowledged)} acknowledged"
        expected = {trade_no(int(refund_id[1:])) for refund_id in self.acknowledged}
        ledger = await self.sandbox_json("batches")
        sent = Counter(detail["trade_no"] for batch in ledger for detail in batch["details"])
        assert sent == Counter(dict.fromkeys(expected, 1)), f"sandbox ledger: {sent}"
        assert {detail["code"] for batch in ledger for detail in batch["details"]} == {"SUCCESS"}
        paid = {trade["trade_no"]: trade["refund_count"] for trade in await self.sandbox_json("trades")}
        assert paid == dict.fromkeys(expected, 1), f"refunds per trade at the sandbox: {paid}"
        ours = await self.store.list_batches(limit=1000)
        assert {batch.batch_no for batch in ours} == {batch["batch_no"] for batch in ledger}
        counts = await self.store.counts()
        assert counts["refunds"] == {"succeeded": count}, counts  # none left behind, none failed
        assert counts["reports"] == {"delivered": count}, counts  # and no dead letter either
        assert counts["batches"] == {"completed": len(ours)}, counts
        assert self.shop.deliveries == count, f"{self.shop.deliveries} deliveries for {count} refunds"
        assert {r["refund_id"]: r["status"] for r in self.shop.results.values()} == dict.fromkeys(
            self.acknowledged, "succeeded"
        )
        finals = self.transitions.finals()
        assert all(len(olds) == 1 for olds in finals.values()), f"a result recorded twice: {finals}"
        line = (f"{self.cell:<34} {self.backend:<8} paid once {len(paid)}/{count}, reported once "
                f"{self.shop.deliveries}/{count}, {len(ledger)} batch_nos at the sandbox"
                + "".join(f"; {note}" for note in self.notes) + f"; {time.monotonic() - self.started:.1f} s")
        figures.record(self.config, "fault matrix", line)


def backend_of(store_url: str) -> str:
    return "sqlite" if store_url.startswith("sqlite") else "postgres"


def _config(store_url: str, sections: Mapping[str, Any]) -> Callable[[int, str, str], Config]:
    """The adapter's config for `adapter_loop`: the matrix's defaults, then the cell's `sections`."""

    def build(port: int, gateway_url: str, shop_url: str) -> Config:
        shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
        defaults = {
            "batching": BATCH_WHEN_FULL,
            "reporter": {
                "base_delay_seconds": ReporterConfig.base_delay_seconds / SCALE,
                "max_delay_seconds": ReporterConfig.max_delay_seconds / SCALE,
                "give_up_after_seconds": ReporterConfig.give_up_after_seconds / SCALE,
            },
            "reconciler": QUERYING,
            "http": {"connect_timeout_seconds": 1, "total_timeout_seconds": HTTP_TIMEOUT},
        }
        # local_config's SQLite path is replaced by `store_url` (either backend).
        raw = local_config(Path("unused.db"), port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                           platforms={"generic": {"shops": [shop]}},
                           **{**defaults, **sections, "store": {"url": store_url}})
        return parse_config(raw, env={})

    return build


OpenCell = Callable[..., AbstractAsyncContextManager[FaultLoop]]


@contextlib.asynccontextmanager
async def fault_loop(
    cell: str,
    store_url: str,
    config: pytest.Config,
    *,
    faults: Mapping[str, Any] | None = None,
    evaluation_delay_seconds: float = 0.0,
    shop: SimulatedShop | None = None,
    **sections: Any,
) -> AsyncIterator[FaultLoop]:
    """Sandbox (with `faults` from the start), shop and adapter (config `sections` over the matrix's defaults)."""
    trades = [TradeSeed(trade_no=trade_no(i), amount=Decimal("100.00")) for i in range(REFUNDS)]
    sandbox = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=SCALE, trades=trades, faults=faults or {},
                            evaluation_delay_seconds=evaluation_delay_seconds)
    shop, transitions = shop or SimulatedShop(SECRET), Transitions()
    pm = create_plugin_manager()
    pm.register(transitions, name="transitions")
    async with adapter_loop(_config(store_url, sections), sandbox=sandbox, shop=shop, pm=pm,
                            request_timeout=DEADLINE) as adapter:
        yield FaultLoop(cell, backend_of(store_url), adapter, shop, transitions, config)
