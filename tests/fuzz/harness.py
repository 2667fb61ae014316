"""The fuzzers' kit: the whole app served on a real port from a thread of its own, a raw HTTP client, the store's
state before and after a request, and the checks every answer must pass.

The app runs in a background event loop so that hypothesis drives plain (synchronous) tests: each example is one
request over a socket, its raw bytes exactly as generated (aiohttp's client would normalise headers and paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings
from refund_adapter_generic import standard_webhooks

from refund_adapter.config import parse_config
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed, run_sandbox
from refund_adapter.store import RefundStore
from refund_adapter.testing import free_port, local_config, serve, wait_until
from refund_adapter.untrusted import LOG_LINE_LIMIT
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE
from refund_adapter.web.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_PREFIX

from ..shopify.fake_shopify import DOMAIN as SHOPIFY_DOMAIN
from ..shopify.fake_shopify import FakeShopify
from ..woocommerce.fake_woocommerce import CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET, FakeWooCommerce

T = TypeVar("T")

PARTNER = "2088101122136241"
MD5_KEY = "fuzzing-md5-key-0123456789abcdef"
GENERIC_SHOP = "shop-1"
GENERIC_SECRET = "whsec_ZnV6emluZy1zaG9wLXNlY3JldC0wMTIzNDU2Nzg5YWI="
SESSION_SHOP = "payments-app.myshopify.com"  # a Shopify shop in payments-app mode: refund sessions
CLIENT_CERT_HEADER = "X-Client-Verify"
PAID_TRADE = "2026112522000000000000000009"
PAYMENT = "pay-1"  # a Shopify payment of SESSION_SHOP whose Alipay trade is PAID_TRADE
ADMIN_TOKEN = "fuzzing-admin-token"
MAX_BODY = 65536  # small, so bodies past it are cheap to send
TIMEOUT = 30.0  # seconds any one request or store call may take before the test fails

# The app runs beside the test in another thread, and its loops (and the fakes') may use `random` while a test
# draws an input: hypothesis sees the global random state move and warns. Nothing of ours is at fault.
server_randomness = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

tried: Counter[str] = Counter()  # inputs sent per endpoint family, reported at the end of the session

# Each fuzzer tries EXAMPLES inputs (`bench/fuzz.py --examples N` for long runs); derandomized so that CI runs
# are repeatable, unless REFUND_ADAPTER_FUZZ_SEED asks for a run of its own (hypothesis then prints its seed).
EXAMPLES = int(os.environ.get("REFUND_ADAPTER_FUZZ_EXAMPLES", "50"))
SEED = os.environ.get("REFUND_ADAPTER_FUZZ_SEED")
fuzz = settings(
    max_examples=EXAMPLES,
    derandomize=SEED is None,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


def raw_config(tmp_path: Path, port: int, gateway_url: str, shopify_url: str, woo_url: str) -> dict[str, Any]:
    """Every platform at once, an admin token, and background loops that keep still while the fuzzers run."""
    generic = {"shops": [{"id": GENERIC_SHOP, "secret": GENERIC_SECRET, "callback_url": "http://127.0.0.1:9/",
                          "alipay_account": "main"}]}
    shop = {"client_secrets": ["shopify-client-secret"], "access_token": "shpat_test_token", "api_version": "2025-07",
            "alipay_account": "main", "api_base_url": shopify_url}
    shopify = {"client_cert_header": CLIENT_CERT_HEADER, "shops": [
        {**shop, "domain": SHOPIFY_DOMAIN}, {**shop, "domain": SESSION_SHOP, "mode": "payments_app"}]}
    woocommerce = {"shops": [{"url": woo_url, "webhook_secret": WEBHOOK_SECRET, "consumer_key": CONSUMER_KEY,
                              "consumer_secret": CONSUMER_SECRET, "alipay_gateway_ids": ["alipay"],
                              "alipay_account": "main", "refunds_since": "2020-01-01T00:00:00+00:00",
                              "poll_interval_seconds": 3600}]}
    return local_config(
        tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
        platforms={"generic": generic, "shopify": shopify, "woocommerce": woocommerce},
        server={"max_body_bytes": MAX_BODY, "admin_token": ADMIN_TOKEN},
        reconciler={"first_query_after_seconds": 3600, "interval_seconds": 3600},
    )


@dataclass
class World:
    """What the fuzzers talk to: the adapter's address, its store, and the fakes around it."""

    host: str
    port: int
    store: RefundStore
    sandbox: RunningSandbox
    shopify: FakeShopify
    woocommerce: FakeWooCommerce


@contextlib.asynccontextmanager
async def world(tmp_path: Path, *, run_engine: bool) -> AsyncIterator[World]:
    """The sandbox (keeping its notifies to itself), both fake platforms and the adapter, on free ports."""
    trades = [TradeSeed(PAID_TRADE, Decimal("100.00"), dback="S")]  # a 充退 too: its dback notify
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=1000.0, trades=trades)
    shopify, woocommerce = FakeShopify(), FakeWooCommerce()
    async with run_sandbox(sandbox_config) as sandbox, serve(shopify.app()) as shopify_url, \
            serve(woocommerce.app()) as woo_url, serve(_holding_gate()) as gate_url:
        shopify.url, woocommerce.url = shopify_url, woo_url
        port = free_port()
        raw = raw_config(tmp_path, port, sandbox.url, shopify_url, woo_url)
        raw["server"]["public_url"] = gate_url  # where the sandbox sends its notifies
        config = parse_config(raw, env={})
        app = create_app(config, run_engine=run_engine)
        async with serve(app, port=port):
            yield World("127.0.0.1", port, app[ENGINE].store, sandbox, shopify, woocommerce)


def _holding_gate() -> web.Application:
    """The adapter's public URL as Alipay sees it: answers every notify `fail`, so the sandbox keeps its
    notify_ids valid for `notify_verify` (delivered, never acknowledged) and the fuzzers decide what reaches
    the adapter."""

    async def hold(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="fail")

    app = web.Application()
    app.router.add_post("/{path:.*}", hold)
    return app


class Background:
    """`world` running in an event loop on a thread of its own, until `close`."""

    def __init__(self, make: Callable[[], contextlib.AbstractAsyncContextManager[World]]) -> None:
        self._make = make
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.world: World | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="fuzzed-app", daemon=True)
        self._thread.start()
        if not self._ready.wait(TIMEOUT) or self._failure is not None:
            raise RuntimeError("the fuzzed app did not start") from self._failure

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with self._make() as world_:
                self.world = world_
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await `coroutine` in the app's loop (the store is bound to it) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(TIMEOUT)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(TIMEOUT)


# --- requests ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    method: str = "GET"

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def problem(self) -> dict[str, Any]:
        assert self.content_type == PROBLEM_CONTENT_TYPE, (self.status, self.content_type, self.body[:300])
        if self.method == "HEAD":  # the same headers as GET, no body
            return {}
        document = json.loads(self.body)
        assert isinstance(document, dict) and document["status"] == self.status, document
        assert document["type"].startswith(PROBLEM_TYPE_PREFIX), document
        assert len(self.body) <= LOG_LINE_LIMIT + 512, f"a problem of {len(self.body)} bytes"
        return document


def request_bytes(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bytes:
    """One HTTP/1.1 request, byte for byte: no encoding, no normalisation; Content-Length added unless given."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    given = list(headers)
    lines += [name + b": " + value for name, value in given]
    if not any(name.lower() == b"content-length" for name, _ in given) and (body or method == b"POST"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(world_: World, family: str, raw: bytes) -> Answer:
    """Send `raw` on a fresh connection and read the whole answer; counted under `family` unless it is ""."""
    if family:
        tried[family] += 1
    with socket.create_connection((world_.host, world_.port), timeout=TIMEOUT) as sock:
        sock.sendall(raw)
        method = raw.split(b" ", 1)[0].decode("latin-1")
        response = http.client.HTTPResponse(sock, method=method)  # told, so that a HEAD answer is read without body
        response.begin()
        body = response.read()
        with contextlib.suppress(ConnectionResetError):  # a server that closes with our bytes unread resets
            while sock.recv(65536):  # until the server closes: what it logs after answering is logged by then
                pass
        return Answer(response.status, response.headers, body, method)


def as_headers(headers: Mapping[str, str | bytes]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value if isinstance(value, bytes) else value.encode()) for name, value in headers.items()]


@dataclass(frozen=True)
class Submitted:
    """`app` with one refund of PAID_TRADE in `batch_no`, and the notify_ids of the notifies Alipay kept."""

    app: Background
    batch_no: str
    amount: str
    notify_ids: dict[str, str]  # by kind: "batch_refund_notify", "dback_notify"


def submit_one(app: Background, amount: str = "10.00") -> Submitted:
    world_ = app.world
    assert world_ is not None
    body = json.dumps({"refund_id": "submitted-1", "order_id": "o-1", "trade_no": PAID_TRADE, "amount": amount,
                       "currency": "CNY", "reason": "", "paid_amount": "100.00"}).encode()
    headers = standard_webhooks.signed_headers(GENERIC_SECRET, "submitted-1", int(time.time()), body)
    answer = send(world_, "", request_bytes(b"POST", f"/webhooks/generic/{GENERIC_SHOP}".encode(),
                                                 as_headers(headers), body))
    assert answer.status == 200, answer

    async def notified() -> bool:  # the sandbox has delivered both notifies (to the gate, which held them)
        refund = await world_.store.find_refund("generic", GENERIC_SHOP, "submitted-1")
        batch = world_.sandbox.state.batches.get(refund.batch_no or "") if refund is not None else None
        delivered = {n.kind for n in batch.notifications if n.attempts} if batch is not None else set()
        return delivered >= {"batch_refund_notify", "dback_notify"}

    app.run(wait_until(notified, within=TIMEOUT, what="the refund submitted and its notifies made"))
    refund = app.run(world_.store.find_refund("generic", GENERIC_SHOP, "submitted-1"))
    assert refund is not None and refund.batch_no is not None
    notifications = world_.sandbox.state.batches[refund.batch_no].notifications
    return Submitted(app, refund.batch_no, amount, {n.kind: n.notify_id for n in notifications})


# --- state and logs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a request could write: refund and batch rows by state, recorded notifies, plugin data."""

    counts: dict[str, dict[str, int]]
    plugin_data: dict[str, dict[str, str]] = field(default_factory=dict)


async def snapshot(store: RefundStore, memo: tuple[str, str] | None = None) -> Snapshot:
    """The store's state, less the plugin data keys `memo` names: (plugin, key prefix)."""
    data = {plugin: await store.plugin_data_items(plugin, "") for plugin in ("generic", "shopify", "woocommerce")}
    if memo is not None:
        plugin, prefix = memo
        data[plugin] = {key: value for key, value in data[plugin].items() if not key.startswith(prefix)}
    return Snapshot(await store.counts(), data)




def exchange(
    app: Background, logs: pytest.LogCaptureFixture, family: str, raw: bytes, *, notify: bool = False,
    replay: bool = False, memo: tuple[str, str] | None = None,
) -> Answer:
    """Send one request and check what every answer must be: no 5xx; a problem document for a refusal (or
    `fail`/`success` from a notify endpoint, by Alipay's protocol); nothing written for a refusal (nor for the
    `replay` of a request already accepted) but the plugin data keys `memo` names, (plugin, key prefix); every
    log line bounded, none with a traceback, none at ERROR for a refusal."""
    world_ = app.world
    assert world_ is not None
    before = app.run(snapshot(world_.store, memo))
    logs.clear()
    answer = send(world_, family, raw)
    records = list(logs.records)
    assert answer.status < 500, (answer.status, answer.body[:500])
    if answer.status == 400 and answer.content_type == "text/plain":
        # aiohttp's HTTP parser refused the request before any route: its own plain answer (web/protocol.py)
        assert not answer.body.startswith(b"{"), answer
    elif answer.status >= 400:
        answer.problem()
    elif notify:
        assert answer.body in (b"success", b"fail"), answer.body[:200]
    refused = answer.status >= 400 or (notify and answer.body != b"success")
    check_logs(records, refused=refused)
    if refused or replay:
        assert app.run(snapshot(world_.store, memo)) == before, "a refused or replayed request changed the store"
    return answer


def check_logs(records: list[logging.LogRecord], *, refused: bool) -> None:
    """No traceback, no error for a refused request, and every line bounded."""
    for record in records:
        text = record.getMessage()
        assert len(text) <= LOG_LINE_LIMIT, f"a log line of {len(text)} characters: {text[:200]!r}..."
        assert record.exc_info is None, f"traceback logged: {text[:500]}"
        if refused:
            assert record.levelno < logging.ERROR, f"an error logged for a refused request: {text[:500]}"
