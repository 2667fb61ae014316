"""Fixtures and helpers shared by the gateway-client and sandbox tests.

Everything runs over real loopback HTTP: a sandbox on a free port, a notify receiver that checks signatures
the way a merchant must, and raw form posts for requests our own client would refuse to build.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.channels.mapi.ack import Ack, parse_ack
from refund_adapter.channels.mapi.detail_data import RefundDetail, TradeRefund
from refund_adapter.channels.mapi.gateway import GatewayClient, NotifyVerification
from refund_adapter.channels.mapi.wire import SERVICE_REFUND, format_alipay_time
from refund_adapter.channels.signing import MD5Scheme, RSAScheme, SignatureScheme, signed, verify
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox

PARTNER = "2088101122136241"
MD5_KEY = "1234567890abcdefghijklmnopqrstuv"
FAST = 100_000.0  # time_scale: the 4 minute first retry takes 2.4 ms, the whole schedule under a second
DEADLINE = 5.0  # seconds any awaited condition may take before the test fails
TIMEOUT = aiohttp.ClientTimeout(total=DEADLINE)
_serials = itertools.count(1)

T = TypeVar("T")


@dataclass(frozen=True)
class RsaKeys:
    """Alipay's key pair (signs notifies) and the merchant's (signs requests)."""

    alipay: rsa.RSAPrivateKey
    merchant: rsa.RSAPrivateKey


@functools.cache
def rsa_keys() -> RsaKeys:
    """Generated once per test session."""
    return RsaKeys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """The partner with both an MD5 key and RSA keys, retries compressed by FAST."""
    keys = rsa_keys()
    settings: dict[str, Any] = {
        "partner": PARTNER,
        "md5_key": MD5_KEY,
        "alipay_private_key": keys.alipay,
        "merchant_public_key": keys.merchant.public_key(),
        "time_scale": FAST,
    }
    return SandboxConfig(**{**settings, **overrides})


def merchant_scheme(sign_type: str = "MD5", charset: str = "utf-8") -> SignatureScheme:
    """How the merchant signs requests and verifies notifies."""
    if sign_type == "MD5":
        return MD5Scheme(MD5_KEY, charset)
    keys = rsa_keys()
    return RSAScheme(keys.merchant, keys.alipay.public_key(), charset)


def make_client(
    http: aiohttp.ClientSession,
    gateway_url: str,
    *,
    sign_type: str = "MD5",
    charset: str = "utf-8",
    partner: str = PARTNER,
    timeout: aiohttp.ClientTimeout = TIMEOUT,
) -> GatewayClient:
    return GatewayClient(
        http,
        gateway_url=gateway_url,
        partner=partner,
        scheme=merchant_scheme(sign_type, charset),
        charset=charset,
        timeout=timeout,
    )


def new_batch_no() -> str:
    """A fresh, valid batch_no for today in Beijing."""
    return beijing_now().strftime("%Y%m%d") + f"T{next(_serials):06d}"


def detail(trade_no: str, amount: str = "10.00", reason: str = "协商退款") -> RefundDetail:
    return RefundDetail(TradeRefund(trade_no, Decimal(amount), reason))


def seed(sandbox: RunningSandbox, trade_no: str, amount: str = "100.00", **fields: Any) -> None:
    """Put a trade in the ledger in-process (the HTTP endpoint has tests of its own)."""
    sandbox.state.ledger.seed(TradeSeed.from_json({"trade_no": trade_no, "amount": amount, **fields}))


async def eventually(check: Callable[[], T | None], what: str) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after DEADLINE."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                if result := check():
                    return result
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def refund_params(batch_no: str, detail_data: str, /, **overrides: str) -> dict[str, str]:
    """A valid unsigned refund request; override or blank any parameter."""
    params = {
        "service": SERVICE_REFUND,
        "partner": PARTNER,
        "_input_charset": "utf-8",
        "batch_no": batch_no,
        "refund_date": format_alipay_time(beijing_now()),
        "batch_num": str(detail_data.count("#") + 1),
        "detail_data": detail_data,
    }
    params.update(overrides)
    return params


async def post_form(
    http: aiohttp.ClientSession, url: str, params: Mapping[str, str], charset: str = "utf-8"
) -> tuple[int, bytes]:
    """POST a hand-built form as-is (no `_input_charset` added to the URL)."""
    body = urlencode(params, encoding=charset).encode("ascii")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(url, data=body, headers=headers, timeout=TIMEOUT) as resp:
        return resp.status, await resp.read()


async def submit_raw(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    params: Mapping[str, str],
    scheme: SignatureScheme | None = None,
    charset: str = "utf-8",
) -> Ack:
    """Sign (with the MD5 key unless told otherwise) and post a raw request; the parsed XML answer."""
    wire = signed(params, scheme or merchant_scheme(charset=charset))
    status, body = await post_form(http, sandbox.url, wire, charset)
    assert status == 200, body
    return parse_ack(body)


@dataclass
class Received:
    """One notify as a merchant saw it."""

    path: str
    params: dict[str, str]
    signature_ok: bool
    verification: NotifyVerification | None


@dataclass
class NotifyReceiver:
    """A merchant's notify endpoint on 127.0.0.1: checks each signature and answers from `answers`.

    `answers` is consumed in order, then every notify is answered `success`. With `verifier` set, each
    notify_id is checked with the gateway while the delivery is still in flight, as a merchant must.
    """

    base_url: str = ""
    sign_type: str = "MD5"
    charset: str = "utf-8"
    answers: list[str] = field(default_factory=list)
    verifier: GatewayClient | None = None
    received: list[Received] = field(default_factory=list)

    def url(self, path: str = "/notify") -> str:
        return self.base_url + path

    def at(self, path: str = "/notify") -> list[Received]:
        return [notify for notify in self.received if notify.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode("ascii")
        params = dict(parse_qsl(body, keep_blank_values=True, encoding=self.charset, errors="strict"))
        verification = await self.verifier.notify_verify(params["notify_id"]) if self.verifier else None
        signature_ok = verify(params, merchant_scheme(self.sign_type, self.charset))
        self.received.append(Received(request.path, params, signature_ok, verification))
        return web.Response(text=self.answers.pop(0) if self.answers else "success")

    async def wait_for(self, count: int, path: str = "/notify") -> list[Received]:
        """The first `count` notifies at `path`, once they arrived."""
        await eventually(lambda: len(self.at(path)) >= count, f"{count} notifies at {path}")
        return self.at(path)


@pytest.fixture
async def alipay_http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def alipay_sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox(sandbox_config()) as sandbox:
        yield sandbox


@pytest.fixture
def gateway_client(alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox) -> GatewayClient:
    return make_client(alipay_http, alipay_sandbox.url)


@pytest.fixture
async def notify_receiver() -> AsyncIterator[NotifyReceiver]:
    receiver = NotifyReceiver()
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
