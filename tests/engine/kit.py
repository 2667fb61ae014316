"""An engine driven step by step: the real app's wiring (store, channels, platforms) with its loops not started,
a clock the test sets, and a shop whose answers the test chooses."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

from aiohttp import web

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.config import parse_config
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.models import BatchState, DetailResult, Refund, RefundRequest
from refund_adapter.money import beijing_now
from refund_adapter.testing import free_port, local_config, serve
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

PARTNER = "2088101122136241"
MD5_KEY = "engine-kit-md5-key-0123456789abcd"
SHOP = "shop-1"
SECRET = "whsec_ZW5naW5lLWtpdC1zaG9wLXNlY3JldC0zMi1ieXRlcyE="
# 17:00 UTC on 25 November is 01:00 on 26 November in Beijing: a day apart, whenever the suite runs.
EVENING_UTC = datetime(2026, 11, 25, 17, 0, tzinfo=UTC).timestamp()
_trades = count(1)


@dataclass
class Clock:
    """The engine's clock, moved only by the test."""

    now: float = EVENING_UTC

    def __call__(self) -> float:
        return self.now


@dataclass
class Shop:
    """A `generic` shop's callback URL answering each report with the next (status, headers) of `answers`,
    then 200; it counts what it was sent."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    calls: int = 0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (webhook-id, JSON body)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/callback", self._callback)
        return app

    async def _callback(self, request: web.Request) -> web.Response:
        self.received.append((request.headers["webhook-id"], json.loads(await request.read())))
        self.calls += 1
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.Response(status=status, headers=headers, text="answer")


@contextlib.asynccontextmanager
async def driven_engine(
    tmp_path: Path,
    clock: Clock,
    *,
    gateway_url: str = "http://127.0.0.1:9/gateway.do",
    shop_url: str = "http://127.0.0.1:9",
    **sections: Any,
) -> AsyncIterator[EngineContext]:
    """The app's EngineContext over a fresh SQLite file, its loops not running: the test calls each step."""
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
    port = free_port()
    raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                       platforms={"generic": {"shops": [shop]}}, **sections)
    app = create_app(parse_config(raw, env={}), clock=clock, run_engine=False)
    async with serve(app, port=port):
        yield app[ENGINE]


def request(trade_no: str | None = None, amount: str = "20.00") -> RefundRequest:
    trade = trade_no or f"2026112517{next(_trades):08d}"
    return RefundRequest(platform="generic", shop=SHOP, platform_refund_id=f"r-{trade}", order_id=f"o-{trade}",
                         trade_no=trade, amount=Decimal(amount), currency="CNY", reason="damaged",
                         alipay_account="main")


async def settled_refund(ctx: EngineContext, code: str = "SUCCESS", platform: str = "generic") -> Refund:
    """A refund carried through the store to a final result at `ctx.clock()`: its report is due now."""
    now = ctx.clock()
    await ctx.store.accept([replace(request(), platform=platform)], now)
    day = beijing_now(datetime.fromtimestamp(now, UTC)).date()
    batch = await ctx.store.create_batch("main", 10, batch_nos(day), now)
    assert batch is not None
    await ctx.store.set_batch_state(batch.id, BatchState.SUBMITTED, now)
    (detail,) = batch.details
    await ctx.store.record_results(batch.id, [DetailResult(detail.trade_no, detail.amount, code)], now,
                                   message_id=None, kind="query")
    refund = await ctx.store.get_refund(detail.refund_id)
    assert refund is not None and refund.state.is_final
    return refund
