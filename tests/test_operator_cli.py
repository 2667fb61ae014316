"""The operator's commands against a real `serve` process: they read beside it and act through it."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import yaml
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.chaos import ServeProcess
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import free_port, serve, wait_until

PARTNER = "2088101122136241"
MD5_KEY = "clitestkey0123456789abcdefghijkl"
SECRET = "whsec_" + base64.b64encode(b"cli-test-secret-bytes!!!").decode()
TOKEN = "operator-token-0123456789"
CLI = (sys.executable, "-c", "from refund_adapter.cli import main; main()")


def payload(i: int) -> dict[str, str]:
    return {"refund_id": f"r{i}", "order_id": f"o{i}", "trade_no": f"20261207{i:08d}", "amount": "12.50",
            "currency": "CNY", "reason": "cli test"}


@dataclass
class Running:
    serve: ServeProcess
    shop: SimulatedShop
    config: Path

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run `refund-adapter ARGS --config ...` as its own process: exit status, stdout, stderr."""
        process = await asyncio.create_subprocess_exec(
            *CLI, *args, "--config", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def cli_json(self, *args: str) -> list[dict[str, object]]:
        status, out, err = await self.cli(*args, "--json")
        assert status == 0, err
        return [json.loads(line) for line in out.splitlines()]


def _config(tmp: Path, port: int, sandbox: RunningSandbox, shop_url: str, channel: str) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "admin_token": TOKEN},
        "store": {"url": f"sqlite:///{tmp / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                          "gateway_url": sandbox.url, "channel": channel,
                                          "seller_user_id": PARTNER}}},
        "batching": {"max_wait_seconds": 0.05},
        "reporter": {"base_delay_seconds": 0.05, "max_delay_seconds": 0.1, "give_up_after_seconds": 0.3},
        "platforms": {"generic": {"shops": [{"id": "s1", "secret": SECRET, "callback_url": shop_url,
                                              "alipay_account": "main"}]}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


@asynccontextmanager
async def serving(tmp_path: Path, channel: str = "mapi") -> AsyncIterator[Running]:
    trades = [TradeSeed(trade_no=payload(i)["trade_no"], amount=Decimal("100.00")) for i in range(3)]
    shop = SimulatedShop(SECRET)
    async with (
        run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades)) as sandbox,
        serve(shop.app()) as shop_url,
    ):
        port = free_port()
        instance = ServeProcess(_config(tmp_path, port, sandbox, shop_url + "/callback", channel), port)
        await instance.start()
        try:
            yield Running(instance, shop, instance.config)
        finally:
            assert await instance.stop() == 0


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path) as instance:
        yield instance


def _reported(running: Running, refund_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return refund_id in running.shop.results

    return check


async def _send(running: Running, i: int) -> None:
    async with aiohttp.ClientSession() as session:
        assert await running.shop.send_refund(session, running.serve.url, "s1", payload(i)) == 200


async def test_commands_read_beside_a_running_serve_and_retry_through_it(running: Running) -> None:
    await _send(running, 0)
    await wait_until(_reported(running, "r0"), within=30, what="r0 reported")

    # The shop goes down: r1's report gives up and becomes a dead letter.
    running.shop.down_until = time.monotonic() + 3600
    await _send(running, 1)

    async def dead() -> bool:
        return bool(await running.cli_json("dead-letters", "list"))

    await wait_until(dead, within=30, what="r1's report dead-lettered")
    [letter] = await running.cli_json("dead-letters", "list")
    assert letter["platform_refund_id"] == "r1" and letter["report_state"] == "dead"

    status, table, err = await running.cli("refunds", "list")
    assert status == 0, err
    header, *lines = table.splitlines()
    assert header.split()[:3] == ["id", "platform", "shop"]
    assert [line.split()[3] for line in lines] == ["r1", "r0"]  # newest first, one aligned row each
    assert len({line.index("generic") for line in lines}) == 1

    refunds = await running.cli_json("refunds", "list", "--state", "succeeded")
    assert {r["platform_refund_id"] for r in refunds} == {"r0", "r1"}

    status, shown, err = await running.cli("refunds", "show", str(letter["id"]), "--json")
    assert status == 0, err
    assert json.loads(shown)["report_error"]

    [batch, *_] = await running.cli_json("batches", "list")
    for name in (str(batch["id"]), str(batch["batch_no"])):
        status, out, err = await running.cli("batches", "show", name, "--json")
        assert status == 0, err
        assert json.loads(out)["batch_no"] == batch["batch_no"]

    # Back up: the retry goes through the running service, whose reporter delivers at once.
    running.shop.down_until = 0
    status, out, err = await running.cli("refunds", "retry", str(letter["id"]))
    assert (status, out.strip()) == (0, f"refund {letter['id']}: report back in the outbox"), err
    await wait_until(_reported(running, "r1"), within=30, what="r1 reported after the retry")
    assert await running.cli_json("dead-letters", "list") == []


ONE_LINE_ERRORS = [  # the two tracebacks first
    (("refunds", "list", "--state", "bogus"), "Error: Invalid value for '--state': 'bogus' is not one of"),
    (("refunds", "show", "424242"), "Error: no refund 424242"),
    (("refunds", "show", "x"), "Error: Invalid value for 'ID': 'x' is not a valid integer range."),
    (("batches", "show", "99"), "Error: no batch 99"),
    (("batches", "requery", "99"), "Error: no batch 99"),
    (("refunds", "retry", "424242"), "Error: no refund 424242"),
]


async def test_a_bad_argument_or_unknown_id_is_one_line_and_exit_1(running: Running) -> None:
    """All against one running `serve` (each case its own process): one start-up, not one per case."""
    for args, expected in ONE_LINE_ERRORS:
        status, out, err = await running.cli(*args)
        assert (status, out) == (1, ""), args
        assert err.startswith(expected) and err.count("\n") == 1, err


async def test_an_action_with_a_token_the_service_refuses_is_one_line_and_changes_nothing(
    running: Running, tmp_path: Path
) -> None:
    wrong = yaml.safe_load(running.config.read_text("utf-8"))
    wrong["server"]["admin_token"] = "not-the-token"
    config = tmp_path / "wrong-token.yaml"
    config.write_text(yaml.safe_dump(wrong), "utf-8")
    status, out, err = await Running(running.serve, running.shop, config).cli("dead-letters", "retry")
    assert (status, out) == (1, "")
    assert err.startswith(f"Error: POST {running.serve.url}/-/dead-letters/retry: the service refused the token")
    assert err.count("\n") == 1 and "not-the-token" not in err


async def test_an_operator_at_a_terminal_gets_a_link_to_approve_a_batch(tmp_path: Path) -> None:
    async with serving(tmp_path, channel="mapi_pwd") as running:
        await _send(running, 0)

        async def waiting() -> bool:
            return bool(await running.cli_json("batches", "list", "--state", "awaiting_approval"))

        await wait_until(waiting, within=30, what="a batch awaiting approval")
        [batch] = await running.cli_json("batches", "list", "--state", "awaiting_approval")
        status, out, err = await running.cli("batches", "approve-url", str(batch["id"]))
        assert status == 0, err
        url = out.strip()
        assert "service=refund_fastpay_by_platform_pwd" in url and f"batch_no={batch['batch_no']}" in url
        assert f"batch {batch['batch_no']}: open the link above before" in err
        status, out, err = await running.cli("batches", "approve-url", "99")
        assert (status, out) == (1, "") and "unknown-batch" not in err and "no such batch" in err
