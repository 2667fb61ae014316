"""`serve` with its engine in a process of its own (the default, `engine.own_process`): refunds go all the way
through, /readyz and /metrics see the engine process, it is started again when it dies, it dies with `serve`, and
SIGTERM stops both. Real processes: `serve` as a subprocess, the sandbox and the shop in the test process."""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import yaml
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.chaos import ServeProcess
from refund_adapter.sandbox import SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import ADMIN_HEADERS, TEST_ADMIN_TOKEN, free_port, serve, wait_until

PARTNER = "2088101122136241"
MD5_KEY = "processtestkey0123456789abcdefgh"
SECRET = "whsec_" + base64.b64encode(b"engine-process-secret!!!").decode()
REFUNDS = 6


def payload(i: int) -> dict[str, str]:
    return {"refund_id": f"p{i}", "order_id": f"o{i}", "trade_no": f"20261207{i:08d}", "amount": "3.00",
            "currency": "CNY", "reason": "engine process test"}


@dataclass
class Service:
    serve: ServeProcess
    shop: SimulatedShop

    @property
    def url(self) -> str:
        return self.serve.url

    def engine_pids(self) -> list[int]:
        """The live children of `serve` (its engine process)."""
        assert self.serve.process is not None
        return _children(self.serve.process.pid)

    async def send(self, session: aiohttp.ClientSession, indices: range) -> None:
        for i in indices:
            assert await self.shop.send_refund(session, self.url, "s1", payload(i)) == 200

    async def reported(self, count: int) -> None:
        async def done() -> bool:
            return len(self.shop.results) == count

        await wait_until(done, within=30, what=f"{count} refunds reported")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _mapped_packages(pid: int) -> set[str]:
    """The `/package/` of each site-packages file the process maps (its extension modules)."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        _, marker, rest = line.partition("-packages/")
        if marker:
            found.add("/" + rest.split("/", 1)[0] + "/")
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def write_config(tmp_path: Path, port: int, gateway_url: str, shop_url: str, account: dict[str, str] | None = None,
                 **sections: dict[str, object]) -> Path:
    """serve's config for these tests: the sandbox as the MD5 account's gateway (with `account`'s settings), one
    generic shop, batches after 0.2 s, and `sections`; the engine in its own process (the default)."""
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "admin_token": TEST_ADMIN_TOKEN},
        "store": {"url": f"sqlite:///{tmp_path / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                          "gateway_url": gateway_url, **(account or {})}}},
        "batching": {"max_wait_seconds": 0.2},
        "platforms": {"generic": {"shops": [{"id": "s1", "secret": SECRET, "callback_url": shop_url + "/callback",
                                              "alipay_account": "main"}]}},
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    trades = [TradeSeed(trade_no=payload(i)["trade_no"], amount=Decimal("10.00")) for i in range(REFUNDS)]
    shop = SimulatedShop(SECRET)
    async with (run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades))
                as sandbox, serve(shop.app()) as shop_url):
        port = free_port()
        path = write_config(tmp_path, port, sandbox.url, shop_url)
        process = ServeProcess(path, port)
        await process.start()
        try:
            yield Service(process, shop)
        finally:
            await process.kill()


async def test_refunds_go_through_and_the_engine_process_is_seen_by_readyz_and_metrics(service: Service) -> None:
    assert len(service.engine_pids()) == 1  # healthy means the engine process runs
    async with aiohttp.ClientSession() as session:
        await service.send(session, range(REFUNDS))
        await service.reported(REFUNDS)
        async with session.get(service.url + "/readyz") as resp:
            assert resp.status == 200
        async with session.get(service.url + "/metrics", headers=ADMIN_HEADERS) as resp:
            text = await resp.text()

        async def engine_counted() -> bool:  # the engine reports its counters every second
            async with session.get(service.url + "/metrics", headers=ADMIN_HEADERS) as resp:
                text = await resp.text()
            return f'refund_adapter_report_attempts_total{{outcome="delivered",platform="generic"}} {REFUNDS}.0' in text

        await wait_until(engine_counted, within=10, what="the engine's report counter served by the web process")
    # the web process's own counters beside the engine's, each family once
    assert f'refund_adapter_webhooks_total{{outcome="accepted",platform="generic"}} {REFUNDS}.0' in text
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert any("refund_adapter_batches_submitted" in line for line in types)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/PID/maps (Linux)")
async def test_an_md5_serve_loads_neither_cryptography_nor_asyncpg_in_either_process(service: Service) -> None:
    """Both are about 9 and 3 MB of each process that loads them (docs/performance.md): an MD5 account on SQLite
    uses neither, from start-up to a refund reported."""
    async with aiohttp.ClientSession() as session:
        await service.send(session, range(REFUNDS))
        await service.reported(REFUNDS)
    assert service.serve.process is not None
    for pid in (service.serve.process.pid, *service.engine_pids()):
        assert not {"/cryptography/", "/asyncpg/"} & _mapped_packages(pid), pid


async def test_a_dead_engine_process_is_started_again_and_readyz_says_so_meanwhile(service: Service) -> None:
    (engine,) = service.engine_pids()
    os.kill(engine, signal.SIGKILL)
    async with aiohttp.ClientSession() as session:
        async def not_ready() -> bool:
            async with session.get(service.url + "/readyz") as resp:
                return resp.status == 503 and "engine process" in (await resp.json())["detail"]

        await wait_until(not_ready, within=5, what="/readyz naming the dead engine process")
        await service.send(session, range(REFUNDS))  # intake goes on meanwhile

        async def ready_again() -> bool:
            async with session.get(service.url + "/readyz") as resp:
                return resp.status == 200

        await wait_until(ready_again, within=30, what="the engine process started again")
        assert service.engine_pids() != [engine]
        await service.reported(REFUNDS)


async def test_sigterm_stops_serve_and_its_engine_process(service: Service) -> None:
    (engine,) = service.engine_pids()
    assert await service.serve.stop() == 0
    assert not _alive(engine)


async def test_the_engine_process_dies_with_a_killed_serve(service: Service) -> None:
    (engine,) = service.engine_pids()
    await service.serve.kill()

    async def gone() -> bool:
        return not _alive(engine)

    await wait_until(gone, within=5, what="the engine process killed with its parent")


async def test_a_second_serve_on_the_same_file_is_refused(service: Service, tmp_path: Path) -> None:
    second = ServeProcess(tmp_path / "config.yaml", free_port())
    with pytest.raises(RuntimeError, match="in use by another refund-adapter process"):
        await second.start()
    assert len(service.engine_pids()) == 1
