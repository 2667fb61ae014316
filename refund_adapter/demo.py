"""`refund-adapter demo`: the Alipay sandbox, the adapter and a simulated shop in one process, on free
loopback ports with a temporary SQLite file, pushing N refunds through the whole loop.

`channel` picks how the demo's Alipay account is reached: `mapi` (nopwd batches), `openapi`
(`alipay.trade.refund`, RSA2 keys made for the run), or `both`: two accounts, one per channel, each with a
shop of its own, refunding side by side through one sandbox ledger, one store and one engine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from refund_adapter_generic.shop import SimulatedShop

from .config import Config, parse_config
from .money import CURRENCY
from .plugins import create_plugin_manager
from .sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from .sandbox.openapi import ACQ_CODES
from .testing import free_port, serve, wait_until
from .web.app import create_app
from .web.keys import ENGINE

PARTNER = "2088101122136241"
SHOP_ID = "demo-shop"
APP_ID = "2021000000000001"  # the demo's open-platform app
OPENAPI_SHOP_ID = "demo-shop-openapi"  # the shop refunding through the OpenAPI account, in `both`
CHANNELS = ("mapi", "openapi", "both")
POOR_SELLER = "2088000000000999"  # a seller account with no balance: TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH
CONCURRENT_WEBHOOKS = 32


@dataclass(frozen=True)
class Scenario:
    """What refund i looks like: scripted failures every so often, as in a real shop's day."""

    index: int
    channel: str = "mapi"  # "mapi" or "openapi": the account (and shop) this refund goes through

    @property
    def shop_id(self) -> str:
        return OPENAPI_SHOP_ID if self.channel == "openapi" else SHOP_ID

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
        """The sandbox ledger's verdict, in the words of the channel the refund goes through."""
        code = "SUCCESS"
        if self.index % 40 == 7:
            code = "TRADE_HAS_CLOSED"
        if self.index % 40 == 23:
            code = "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"
        return ACQ_CODES.get(code, code) if self.channel == "openapi" else code

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


def _pem(key: rsa.RSAPrivateKey, public: bool) -> str:
    """A key as the PEM text an account's config holds."""
    pem = serialization.Encoding.PEM
    if public:
        return key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")


@dataclass(frozen=True)
class DemoKeys:
    """The run's secrets: the MAPI partner's MD5 key, the app's RSA key and the sandbox Alipay's."""

    md5_key: str = field(default_factory=lambda: secrets.token_hex(16))
    app: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                     key_size=2048))
    alipay: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                        key_size=2048))

    def sandbox(self, **settings: Any) -> SandboxConfig:
        """A sandbox that answers the MAPI partner and the OpenAPI app."""
        return SandboxConfig(partner=PARTNER, md5_key=self.md5_key, alipay_private_key=self.alipay,
                             merchant_public_key=self.app.public_key(), app_id=APP_ID, **settings)

    def accounts(self, channel: str, sandbox: RunningSandbox) -> dict[str, Any]:
        """`alipay.accounts` for the channel: `main` over MAPI, `modern` over OpenAPI (or both)."""
        accounts: dict[str, Any] = {}
        if channel in ("mapi", "both"):
            accounts["main"] = {"partner": PARTNER, "sign_type": "MD5", "md5_key": self.md5_key,
                                "gateway_url": sandbox.url}
        if channel in ("openapi", "both"):
            accounts["modern"] = {"channel": "openapi", "app_id": APP_ID, "private_key": _pem(self.app, False),
                                  "alipay_public_key": _pem(self.alipay, True), "gateway_url": sandbox.openapi_url}
        return accounts


def demo_shops(channel: str, secret: str, shop_url: str) -> list[dict[str, str]]:
    """The generic platform's shops: one per account."""
    shops = []
    if channel in ("mapi", "both"):
        shops.append({"id": SHOP_ID, "secret": secret, "callback_url": shop_url, "alipay_account": "main"})
    if channel in ("openapi", "both"):
        shops.append({"id": OPENAPI_SHOP_ID, "secret": secret, "callback_url": shop_url, "alipay_account": "modern"})
    return shops


def scenarios_for(refunds: int, channel: str) -> list[Scenario]:
    """`both` alternates: even refunds through MAPI, odd ones through OpenAPI."""
    if channel == "both":
        return [Scenario(i, "openapi" if i % 2 else "mapi") for i in range(refunds)]
    return [Scenario(i, channel) for i in range(refunds)]


@dataclass(frozen=True)
class DemoSummary:
    refunds: int
    by_state: dict[str, int]
    reported: int
    unexpected: int  # refunds whose final code differs from the scripted one
    paid_twice: int  # trades the sandbox refunded more than once
    batches: int
    elapsed_s: float
    received: dict[str, int] = field(default_factory=dict)  # what the sandbox received: MAPI batches, OpenAPI calls
    paid_once: int = 0  # trades the sandbox refunded exactly once

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
            "received": self.received,
            "paid_once": self.paid_once,
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
    channel: str = "mapi",
    sections: Mapping[str, Any] | None = None,
) -> DemoSummary:
    """Push `refunds` refunds through sandbox, adapter and shop; return when all are reported or on timeout.
    `sections` replace whole sections of the adapter's config (for tests: `http` timeouts...)."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    say = progress or (lambda _line: None)
    keys = DemoKeys()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    scenarios = scenarios_for(refunds, channel)
    # The seller is funded for every refund the demo makes (the sandbox's default balance ran out after about
    # 18,000 of them); the poor seller's trades still fail for want of a balance, as scripted.
    sandbox_config = keys.sandbox(
        time_scale=100.0, trades=[s.seed for s in scenarios], faults=faults or {},
        default_seller_balance=sum((s.amount for s in scenarios), Decimal(0)),
    )
    shop = SimulatedShop(secret)
    async with (
        _store_url(store_url) as url,
        run_sandbox(sandbox_config) as sandbox,
        serve(shop.app()) as shop_url,
    ):
        port = free_port()
        config = demo_config(
            port, sandbox.url, shop_url + "/callback", secret, keys.md5_key, url, first_query_after_seconds,
            alipay={"accounts": keys.accounts(channel, sandbox)},
            platforms={"generic": {"shops": demo_shops(channel, secret, shop_url + "/callback")}},
            **(sections or {}),
        )
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
                    return await shop.send_refund(session, adapter_url, scenario.shop_id, scenario.payload())

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
        received={"mapi_batches": len(sandbox.state.batches), "openapi_calls": len(sandbox.state.openapi_calls)},
        paid_once=sum(1 for trade in sandbox.state.ledger.trades.values() if trade.refund_count == 1),
    )
