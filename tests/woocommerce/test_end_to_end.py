"""The whole loop over loopback HTTP: the fake store's webhook (or the poll) -> the app's store -> the Alipay
sandbox -> the notify -> a note and metadata on the store's order."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from refund_adapter.config import parse_config
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.testing import free_port, serve, wait_until
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE

from .fake_woocommerce import CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET, FakeWooCommerce, ping

PARTNER = "2088101122136241"
MD5_KEY = "woocommerce0e2e0key0123456789abc"
TRADE = "2026061522001412345678901234"
PROBLEM = "urn:refund-adapter:problem:"


@dataclass
class Loop:
    fake: FakeWooCommerce
    sandbox: RunningSandbox
    app: web.Application
    url: str
    session: aiohttp.ClientSession

    async def stored(self) -> list[str]:
        """The platform refund ids of every refund in the app's store."""
        return sorted(refund.request.platform_refund_id for refund in await self.app[ENGINE].store.list_refunds())

    async def post(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        async with self.session.post(f"{self.url}/webhooks/woocommerce", data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def first_poll(self) -> None:
        """Until the adapter has polled the store once: it then knows since when refunds are its own."""
        await wait_until(lambda: _true(any(c.path == "orders" for c in self.fake.calls)), within=10, what="a poll")

    async def reported(self, order_id: int, refund_id: int) -> dict[str, str]:
        key = f"_alipay_refund_{refund_id}"
        await wait_until(lambda: _true(self.fake.meta(order_id, key) is not None), within=30, what="the write-back")
        return dict(self.fake.meta(order_id, key))


async def _true(value: bool) -> bool:
    return value


@contextlib.asynccontextmanager
async def running(tmp_path: Path, poll_interval_seconds: float) -> AsyncIterator[Loop]:
    fake = FakeWooCommerce()
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0,
                                   trades=[TradeSeed(trade_no=TRADE, amount=Decimal("100.00"))])
    async with serve(fake.app()) as fake_url, run_sandbox(sandbox_config) as sandbox:
        fake.url = fake_url
        port = free_port()
        shop = {"url": fake_url, "webhook_secret": WEBHOOK_SECRET, "consumer_key": CONSUMER_KEY,
                "consumer_secret": CONSUMER_SECRET, "alipay_gateway_ids": ["alipay"], "alipay_account": "main",
                "poll_interval_seconds": poll_interval_seconds}
        config = parse_config(
            {
                "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}"},
                "store": {"url": f"sqlite:///{tmp_path / 'refunds.db'}"},
                "alipay": {"accounts": {"main": {"partner": PARTNER, "sign_type": "MD5", "md5_key": MD5_KEY,
                                                  "gateway_url": sandbox.url}}},
                "batching": {"max_wait_seconds": 0.2},
                "reporter": {"base_delay_seconds": 0.1, "max_delay_seconds": 0.5},
                "reconciler": {"first_query_after_seconds": 30, "interval_seconds": 0.2},
                "platforms": {"woocommerce": {"shops": [shop]}},
            },
            env={},
        )
        app = create_app(config)
        async with serve(app, port=port) as url, aiohttp.ClientSession() as session:
            loop = Loop(fake, sandbox, app, url, session)
            await loop.first_poll()
            yield loop


async def test_two_new_refunds_and_one_old_store_two_and_a_replay_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, poll_interval_seconds=3600) as loop:  # one poll, at start: webhooks only
        loop.fake.add_order(727)
        old = loop.fake.add_refund(727, "3.00")
        assert await loop.post(*loop.fake.delivery(727)) == (200, b"")
        assert await loop.stored() == [f"727:{old}"]
        new = [loop.fake.add_refund(727, "10.00"), loop.fake.add_refund(727, "5.00")]
        delivery = loop.fake.delivery(727)

        assert (await loop.post(*delivery))[0] == 200
        assert await loop.stored() == sorted(f"727:{rid}" for rid in [old, *new])
        assert (await loop.post(*delivery))[0] == 200  # the same delivery again
        loop.fake.add_refund(727, "7.00", refunded_payment=True)
        assert (await loop.post(*loop.fake.delivery(727)))[0] == 200
        assert len(await loop.stored()) == 3


async def test_refused_deliveries_store_nothing(tmp_path: Path) -> None:
    async with running(tmp_path, poll_interval_seconds=3600) as loop:
        loop.fake.add_order(727)
        loop.fake.add_refund(727, "10.00")
        forged = loop.fake.delivery(727, secret="not the secret")
        stranger = loop.fake.delivery(727)
        stranger[0]["X-WC-Webhook-Source"] = "https://stranger.example/"
        malformed = loop.fake.delivery(727, body=b'{"id": "727"')

        for delivery, status, type_ in [(forged, 401, "invalid-signature"), (stranger, 404, "unknown-shop"),
                                        (malformed, 400, "malformed-body")]:
            answer_status, answer = await loop.post(*delivery)
            assert answer_status == status and f'"type": "{PROBLEM}{type_}"' in answer.decode()
        assert await loop.post(*ping()) == (200, b"")
        assert await loop.stored() == []


async def test_a_refund_ends_as_a_note_and_metadata_on_its_order(tmp_path: Path) -> None:
    async with running(tmp_path, poll_interval_seconds=3600) as loop:
        loop.fake.add_order(727, total="100.00")
        refund_id = loop.fake.add_refund(727, "12.50", reason="wrong size")
        assert (await loop.post(*loop.fake.delivery(727)))[0] == 200

        result = await loop.reported(727, refund_id)

        assert result["status"] == "succeeded" and result["code"] == "SUCCESS" and result["amount"] == "12.50"
        assert result["batch_no"]
        (note,) = loop.fake.notes[727]
        assert note["customer_note"] is False and f"refund #{refund_id}" in note["note"]
        assert loop.sandbox.state.ledger.trades[TRADE].refund_count == 1


@pytest.mark.parametrize(
    ("order", "amount", "code"),
    [
        ({"currency": "USD"}, "10.00", "UNSUPPORTED_CURRENCY"),
        ({"trade_no": "PAYID-M2X"}, "10.00", "NO_ALIPAY_TRADE_NO"),
        ({}, "10.005", "AMOUNT_PRECISION"),
    ],
)
async def test_a_refund_of_an_alipay_order_that_cannot_be_paid_is_stored_rejected_and_noted_on_the_order(
    tmp_path: Path, order: dict[str, str], amount: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It was only a log line: now the operator sees it and the order says why; WooCommerce gets its 200."""
    async with running(tmp_path, poll_interval_seconds=0.2) as loop:
        loop.fake.add_order(727, **order)
        refund_id = loop.fake.add_refund(727, amount)
        with caplog.at_level(logging.WARNING):
            assert await loop.post(*loop.fake.delivery(727)) == (200, b"")
            result = await loop.reported(727, refund_id)
            polls = sum(call.path == "orders" for call in loop.fake.calls)
            await wait_until(lambda: _true(sum(c.path == "orders" for c in loop.fake.calls) >= polls + 2),
                             within=30, what="two more polls")
        assert (result["status"], result["code"]) == ("failed", code)
        (refund,) = await loop.app[ENGINE].store.list_refunds()
        assert (refund.state, refund.code) == ("rejected", code)
        ours = ("refund_adapter_woocommerce", "refund_adapter.engine")  # other tests' servers may log here too
        # the order's number as a word: a port such as 37279 in another line is not about it
        about_it = [r.getMessage() for r in caplog.records
                    if r.name.startswith(ours) and re.search(r"\b727\b", r.getMessage())]
        assert about_it == []  # the polls that meet it again stay quiet
        assert loop.sandbox.state.batches == {}


async def test_a_refund_whose_webhook_was_never_sent_is_found_by_the_poller(tmp_path: Path) -> None:
    async with running(tmp_path, poll_interval_seconds=0.2) as loop:
        loop.fake.add_order(727)
        refund_id = loop.fake.add_refund(727, "20.00")  # no delivery: WooCommerce never retries a lost one

        result = await loop.reported(727, refund_id)

        assert result["status"] == "succeeded"
        assert await loop.stored() == [f"727:{refund_id}"]
        assert loop.sandbox.state.ledger.trades[TRADE].refund_count == 1
