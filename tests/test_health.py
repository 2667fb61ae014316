"""`/healthz` and `/readyz` on a running adapter: ready while the store answers with every migration applied and
every engine loop beats; a 503 problem naming the reason when a loop stopped or stalled, the store is out of
reach or behind this build's migrations; both open without the admin token."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from refund_adapter_generic.shop import signed_generic_webhook

from refund_adapter import hookimpl
from refund_adapter.config import parse_config
from refund_adapter.models import Refund, RefundState
from refund_adapter.plugins import create_plugin_manager
from refund_adapter.store.sql import migrations
from refund_adapter.testing import free_port, local_config, serve, wait_until
from refund_adapter.web.app import create_app
from tests.conftest import _admin

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
TOKEN = "operator-token-for-health"


def _config(store_url: str, port: int, **sections: Any) -> Any:
    raw = local_config(Path("unused.db"), port, partner="2088101122136241", md5_key="k" * 32,
                       gateway_url=f"http://127.0.0.1:{free_port()}/gateway.do",
                       platforms={"generic": {"shops": [{"id": "s", "secret": SECRET, "alipay_account": "main",
                                                         "callback_url": "http://127.0.0.1:9/callback"}]}},
                       server={"admin_token": TOKEN}, **sections)
    return parse_config(raw | {"store": {"url": store_url}}, env={})


@contextlib.asynccontextmanager
async def _adapter(store_url: str, pm: Any = None, **sections: Any) -> AsyncIterator[tuple[str, Any]]:
    port = free_port()
    app = create_app(_config(store_url, port, **sections), pm=pm)
    async with serve(app, port=port) as url:
        yield url, app


async def _readyz(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as resp:  # no token: probes have none
        return resp.status, (await resp.json(content_type=None)).get("detail", "")


async def test_ready_while_all_is_well_and_not_once_a_loop_stopped(tmp_path: Path) -> None:
    async with _adapter(f"sqlite:///{tmp_path / 'r.db'}") as (url, _app):
        async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as resp:
            assert resp.status == 200
        assert await _readyz(url) == (200, "")
        reporter = next(task for task in asyncio.all_tasks() if task.get_name() == "refund-adapter-reporter")
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        assert await _readyz(url) == (503, "engine loop reporter is not running")


class Hang:
    """A plugin whose `refund_state_changed` never returns for a batched refund: the batcher stalls in it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    @hookimpl
    async def refund_state_changed(self, refund: Refund, old_state: RefundState | None, new_state: RefundState) -> None:
        if new_state is RefundState.BATCHED:
            await self.release.wait()


async def test_a_stalled_loop_is_not_ready_until_it_moves_again(tmp_path: Path) -> None:
    hang = Hang()
    pm = create_plugin_manager(None)
    pm.register(hang)
    # a step may take lease_seconds at most (work held longer is taken over): here 2 s, plus the batcher's interval
    async with _adapter(f"sqlite:///{tmp_path / 'r.db'}", pm,
                        http={"connect_timeout_seconds": 0.5, "total_timeout_seconds": 1},
                        engine={"lease_seconds": 2, "yield_max_seconds": 0}) as (url, _app):
        payload = {"refund_id": "r1", "order_id": "o1", "trade_no": "2026120722" + "0" * 10, "amount": "1.00",
                   "currency": "CNY", "paid_amount": "1.00", "reason": "r"}
        headers, body = signed_generic_webhook(SECRET, payload, "msg-1")
        async with aiohttp.ClientSession() as http, http.post(url + "/webhooks/generic/s", data=body,
                                                              headers=headers) as resp:
            assert resp.status == 200, await resp.text()

        async def stalled() -> bool:
            status, detail = await _readyz(url)
            return status == 503 and detail.startswith("engine loop batcher stalled: no progress for ")

        await wait_until(stalled, within=30, what="/readyz to see the batcher stalled")
        hang.release.set()

        async def ready() -> bool:
            return (await _readyz(url))[0] == 200

        await wait_until(ready, within=30, what="/readyz ready once the batcher moves again")


async def test_a_store_behind_this_builds_migrations_is_not_ready(pg_url: str) -> None:
    latest = migrations()[-1][0]
    async with _adapter(pg_url) as (url, _app):
        _admin(f"DELETE FROM schema_version WHERE version = {latest}", pg_url)  # as an older build left it
        assert await _readyz(url) == (503, f"store: schema at version {latest - 1}, this build needs {latest}")


async def test_a_store_out_of_reach_is_not_ready(pg_url: str, pg_admin_dsn: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    async with _adapter(pg_url) as (url, _app):
        assert await _readyz(url) == (200, "")
        _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false', pg_admin_dsn)
        try:
            _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'", pg_admin_dsn)
            status, detail = await _readyz(url)
            assert status == 503 and detail.startswith("store unreachable: "), detail
        finally:
            _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true', pg_admin_dsn)
        await wait_until(lambda: _ready_again(url), within=30, what="ready once the database is back")


async def _ready_again(url: str) -> bool:
    return (await _readyz(url))[0] == 200
