"""A webhook carrying several refunds, one of them a known refund with other content: the others are stored,
the conflicting one keeps its first content, and the whole webhook is answered 409 so the platform sees it.

A small platform plugin of the test's own (one webhook, a JSON list of refunds) goes through the real app,
the real plugin manager and a real SQLite store; the built-in platforms carry one refund per webhook.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from refund_adapter import hookimpl
from refund_adapter.config import parse_config
from refund_adapter.models import DeliveryResult, RefundOutcome, RefundRequest
from refund_adapter.platform import InboundWebhook, PlatformAdapter, ShopInfo, WebhookAccepted
from refund_adapter.plugins import create_plugin_manager
from refund_adapter.store import RefundStore
from refund_adapter.testing import free_port, local_config, metric_value, serve
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

PROBLEM = "urn:refund-adapter:problem:"


class BulkPlatform:
    """Each webhook is a JSON list of `[refund_id, trade_no, amount]` (test only: no signature)."""

    name = "bulk"

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        return WebhookAccepted(requests=tuple(
            RefundRequest("bulk", "s1", refund_id, f"o-{refund_id}", trade_no, Decimal(amount), "CNY", "why", "main")
            for refund_id, trade_no, amount in json.loads(webhook.body)
        ))

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        return DeliveryResult.delivered()

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        return ()

    def shops(self) -> Sequence[ShopInfo]:
        return ()


class Bulk:
    @hookimpl
    def register_platforms(self, register: Callable[[PlatformAdapter], None], config: Any, http: Any) -> None:
        register(BulkPlatform())


@dataclass
class Served:
    url: str
    store: RefundStore
    http: aiohttp.ClientSession

    async def send(self, refunds: list[tuple[str, str, str]]) -> tuple[int, Any]:
        async with self.http.post(self.url + "/webhooks/bulk", json=refunds) as resp:
            return resp.status, (await resp.json(content_type=None)) if resp.status >= 400 else None


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    raw = local_config(tmp_path / "r.db", port, partner="2088101122136241", md5_key="k" * 32,
                       gateway_url="http://127.0.0.1:9/gateway.do", platforms={})
    pm = create_plugin_manager(load_entry_points=False)
    pm.register(Bulk(), name="bulk")
    app = create_app(parse_config(raw, env={}), pm=pm, run_engine=False)
    async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
        yield Served(url, app[ENGINE].store, http)


async def test_one_conflicting_refund_makes_the_webhook_a_409_and_the_others_are_stored(served: Served) -> None:
    assert await served.send([("r1", "T1", "10.00"), ("r2", "T2", "20.00")]) == (200, None)
    retry = [("r1", "T1", "10.00"), ("r2", "T2", "20.01"), ("r3", "T3", "30.00")]
    status, problem = await served.send(retry)
    assert (status, problem["type"]) == (409, PROBLEM + "refund-conflict")
    assert problem["detail"] == ("already stored with other content (refund 'r2': amount); "
                                 "the stored refund was not changed")
    stored = {r.request.platform_refund_id: r.request.amount for r in await served.store.list_refunds()}
    assert stored == {"r1": Decimal("10.00"), "r2": Decimal("20.00"), "r3": Decimal("30.00")}
    # The platform retries the same webhook: the same answer, nothing stored twice, the conflict counted again.
    assert (await served.send(retry))[0] == 409
    assert len(await served.store.list_refunds()) == 3
    assert await metric_value(served.http, served.url, "refund_adapter_refund_conflicts_total", platform="bulk") == 2


async def test_many_conflicts_in_one_webhook_are_named_up_to_a_few(served: Served) -> None:
    first = [(f"r{i}", f"T{i}", "1.00") for i in range(12)]
    assert (await served.send(first))[0] == 200
    status, problem = await served.send([(refund_id, trade, "2.00") for refund_id, trade, _ in first])
    assert status == 409
    assert problem["detail"].count("amount") == 5 and "; and 7 more)" in problem["detail"]
