"""The Shopify plugin in the real app on a real port, with the Alipay sandbox and the fake shop around it:
guards that store nothing, and the whole loop from a Shopify refund to its result in the shop."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from click.testing import CliRunner

from refund_adapter.cli import main
from refund_adapter.config import Config, parse_config
from refund_adapter.platform import PluginData
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.store import RefundStore
from refund_adapter.testing import adapter_loop, local_config, wait_until

from .conftest import queued, section
from .fake_shopify import DOMAIN, TRADE_NO, FakeShopify, session_body, webhook_headers

PARTNER = "2088101122136241"
MD5_KEY = "shopify-loop-md5-key-0123456789ab"
CLOSED_TRADE = "2026112522000000000000000002"
MAX_BODY = 8192
DEADLINE = 5.0  # each loop takes well under a second: no wait for a reconcile tick (an hour, in places)
OUR_LOGGERS = ("refund_adapter_shopify", "refund_adapter.engine.platform_poller")


def raw_config(tmp_path: Path, port: int, gateway_url: str, shop_url: str, reconcile_every: float = 0.1,
               **shop: Any) -> dict[str, Any]:
    return local_config(
        tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
        platforms={"shopify": section(shop_url, **shop)}, server={"max_body_bytes": MAX_BODY},
        reconciler={"interval_seconds": reconcile_every},
    )


@dataclass
class Loop:
    url: str
    store: RefundStore
    sandbox: RunningSandbox
    fake: FakeShopify
    http: aiohttp.ClientSession

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self.http.post(self.url + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def refunds(self) -> dict[str, int]:
        return (await self.store.counts())["refunds"]

    async def queued(self) -> list[str]:
        return await queued(PluginData(self.store, "shopify"))


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    trades = [TradeSeed(TRADE_NO, Decimal("100.00")), TradeSeed(CLOSED_TRADE, Decimal("100.00"), status="closed")]
    async with run_sandbox(SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades)) as box:
        yield box


async def running(
    tmp_path: Path, sandbox: RunningSandbox, fake: FakeShopify, reconcile_every: float = 0.1, **shop: Any
) -> AsyncIterator[Loop]:
    def config(port: int, gateway_url: str, shop_url: str) -> Config:
        return parse_config(raw_config(tmp_path, port, gateway_url, shop_url, reconcile_every, **shop), env={})

    async with adapter_loop(config, sandbox=sandbox, shop=fake.url) as adapter:
        yield Loop(adapter.url, adapter.store, sandbox, fake, adapter.http)


@pytest.fixture
async def loop(tmp_path: Path, sandbox: RunningSandbox, fake: FakeShopify) -> AsyncIterator[Loop]:
    async for running_loop in running(tmp_path, sandbox, fake):
        yield running_loop


@pytest.fixture
async def hourly_loop(tmp_path: Path, sandbox: RunningSandbox, fake: FakeShopify) -> AsyncIterator[Loop]:
    """Reconcile rounds an hour apart, from when the start-up round has polled the shop (finding nothing): only
    a round a webhook asks for can fetch its refund in time, the poll being rate-limited too."""
    async for running_loop in running(tmp_path, sandbox, fake, reconcile_every=3600):

        async def polled() -> bool:
            return bool(fake.calls)

        await wait_until(polled, within=DEADLINE, what="the start-up poll")
        yield running_loop


# --- guards ----------------------------------------------------------------------------------------------


def unknown_to_the_shop(fake: FakeShopify) -> dict[str, Any]:
    """A refunds/create payload for a refund the shop's API does not show (so no poll may find it either)."""
    payload = fake.add_refund(fake.add_order(1), 2, "30.00")
    fake.orders.clear()
    return payload


def _wrong_hmac(body: bytes) -> dict[str, str]:
    return webhook_headers(body, secret="not-the-secret")


def _unknown_shop(body: bytes) -> dict[str, str]:
    return webhook_headers(body, domain="someone-else.myshopify.com")


@pytest.mark.parametrize(
    ("body", "headers", "status", "problem"),
    [
        pytest.param(None, _wrong_hmac, 401, "invalid-signature", id="wrong-hmac"),
        pytest.param(None, _unknown_shop, 404, "unknown-shop", id="unknown-shop"),
        pytest.param(b'{"id": 929361464, "transactions": [', webhook_headers, 400, "malformed-body", id="bad-json"),
        pytest.param(b'{"id": 1, "note": "' + b"x" * MAX_BODY + b'"}', webhook_headers, 413, None, id="too-large"),
        pytest.param(None, lambda b: webhook_headers(b, topic="orders/paid"), 400, "unsupported-topic", id="topic"),
    ],
)
async def test_refused_webhooks_store_nothing(
    loop: Loop, body: bytes | None, headers: Any, status: int, problem: str | None
) -> None:
    raw = body or json.dumps(unknown_to_the_shop(loop.fake)).encode()
    answer, text = await loop.post("/webhooks/shopify", raw, headers(raw))
    assert answer == status
    if problem is not None:
        assert json.loads(text)["type"].endswith(problem)
    await asyncio.sleep(0.3)  # a reconcile round or two
    assert await loop.refunds() == {}
    assert await loop.queued() == []


async def test_a_non_refund_transaction_is_acknowledged_and_stores_nothing(loop: Loop) -> None:
    payload = unknown_to_the_shop(loop.fake)
    payload["transactions"][0]["kind"] = "capture"
    raw = json.dumps(payload).encode()
    assert await loop.post("/webhooks/shopify", raw, webhook_headers(raw)) == (200, b"")
    await asyncio.sleep(0.3)
    assert await loop.refunds() == {}
    assert await loop.queued() == []


# --- the whole loop --------------------------------------------------------------------------------------


async def test_a_refunds_create_webhook_ends_as_a_tag_and_a_metafield(hourly_loop: Loop) -> None:
    payload = hourly_loop.fake.add_refund(hourly_loop.fake.add_order(450789469), 929361464, "30.00")
    raw = json.dumps(payload).encode()
    for _ in range(2):  # a retry from Shopify changes nothing
        assert await hourly_loop.post("/webhooks/shopify", raw, webhook_headers(raw)) == (200, b"")
    order = "gid://shopify/Order/450789469"

    async def written_back() -> bool:
        return bool(hourly_loop.fake.metafields) and (await hourly_loop.store.counts())["reports"].get("delivered") == 1

    await wait_until(written_back, within=DEADLINE, what="the result on the order")
    assert hourly_loop.fake.tags == {order: ["alipay-refund:succeeded"]}
    key = f"refund-929361464-{payload['transactions'][0]['id']}"
    value = hourly_loop.fake.metafields[(order, "alipay_refund", key)]
    assert (value["status"], value["code"], value["amount"]) == ("succeeded", "SUCCESS", "30.00")
    assert value["batch_no"]
    assert hourly_loop.sandbox.state.ledger.trades[TRADE_NO].refund_count == 1
    assert await hourly_loop.refunds() == {"succeeded": 1}


async def test_unpayable_refunds_are_stored_once_rejected_written_back_and_not_warned_about_again(
    tmp_path: Path, sandbox: RunningSandbox, fake: FakeShopify, caplog: pytest.LogCaptureFixture
) -> None:
    """An order paid some other way (no trade number where the shop keeps it) and a refund in another currency:
    Shopify gets its 200 (any other answer it retries for two days, then drops the subscription), the operator
    sees each REJECTED with its code, the order gets the result, and the poll that meets them again stays quiet."""
    other_gateway = fake.add_refund(fake.add_order(1, trade_no=""), 2, "30.00")
    in_usd = fake.add_refund(fake.add_order(3), 4, "5.00")
    fake.orders[3].refunds[0].transactions[0].currency = "USD"
    async for loop in running(tmp_path, sandbox, fake, poll_interval_seconds=0.1):
        with caplog.at_level(logging.WARNING):
            for payload in (other_gateway, in_usd):
                raw = json.dumps(payload).encode()
                assert await loop.post("/webhooks/shopify", raw, webhook_headers(raw)) == (200, b"")

            async def written_back(store: RefundStore = loop.store) -> bool:
                return (await store.counts())["reports"].get("delivered") == 2

            await wait_until(written_back, within=DEADLINE, what="both rejections on their orders")
            polls = len(fake.calls)

            async def polled_again(polls: int = polls) -> bool:
                return len(fake.calls) >= polls + 3

            await wait_until(polled_again, within=DEADLINE, what="three more reconcile rounds")
        assert await loop.refunds() == {"rejected": 2}
        codes = {value["code"] for value in fake.metafields.values()}
        assert codes == {"NO_ALIPAY_TRADE_NO", "UNSUPPORTED_CURRENCY"}
        assert fake.tags == {"gid://shopify/Order/1": ["alipay-refund:failed"],
                             "gid://shopify/Order/3": ["alipay-refund:failed"]}
        # (Other tests' servers may log in this process too: only this plugin's and the poller's lines count.)
        assert [r.getMessage() for r in caplog.records if r.name.startswith(OUR_LOGGERS)] == []
        assert loop.sandbox.state.batches == {}


async def test_refund_sessions_end_resolved_or_rejected(tmp_path: Path, sandbox: RunningSandbox,
                                                        fake: FakeShopify) -> None:
    shop = {"mode": "payments_app", "client_secrets": []}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw_config(tmp_path, 8080, sandbox.url, fake.url, **shop)), "utf-8")
    payments = tmp_path / "payments.csv"
    payments.write_text(f"shop,payment_id,trade_no,amount\n{DOMAIN},pay-ok,{TRADE_NO},100.00\n"
                        f"{DOMAIN},pay-closed,{CLOSED_TRADE},100.00\n", "utf-8")
    imported = await asyncio.to_thread(
        CliRunner().invoke, main, ["shopify", "import-payments", "--config", str(config_path), str(payments)]
    )
    assert (imported.exit_code, imported.output) == (0, "recorded 2 payments\n")

    async for loop in running(tmp_path, sandbox, fake, **shop):
        headers = {"Content-Type": "application/json", "Shopify-Shop-Domain": DOMAIN, "X-Client-Verify": "SUCCESS"}
        sessions = (("sessOK", "pay-ok"), ("sessClosed", "pay-closed"), ("sessOther", "paid-by-card"))
        for session_id, payment_id in sessions:
            fake.sessions[f"gid://shopify/RefundSession/{session_id}"] = "pending"
            body = json.dumps(session_body(session_id, payment_id)).encode()
            for _ in range(2):  # Shopify repeats a request it saw no answer to: same id, nothing twice
                assert await loop.post("/webhooks/shopify/refund-session", body, headers) == (201, b"")

        async def finished() -> bool:
            return "pending" not in fake.sessions.values()

        await wait_until(finished, within=DEADLINE, what="every session resolved or rejected")
        assert fake.sessions == {"gid://shopify/RefundSession/sessOK": "resolved",
                                 "gid://shopify/RefundSession/sessClosed": "rejected",
                                 "gid://shopify/RefundSession/sessOther": "rejected"}
        other = await loop.store.find_refund("shopify", DOMAIN, "sessOther")
        assert other is not None and (other.state, other.code) == ("rejected", "UNKNOWN_PAYMENT")
        reason = fake.rejections["gid://shopify/RefundSession/sessClosed"]
        assert reason["code"] == "PROCESSING_ERROR" and "TRADE_HAS_CLOSED" in reason["merchantMessage"]
        assert await loop.refunds() == {"succeeded": 1, "failed": 1, "rejected": 1}
