"""A kit for running the whole loop on one machine: free ports, serving apps, polling with a deadline, a
simulated shop for the `generic` platform, and the adapter itself between the Alipay sandbox and a shop. Used
by `refund-adapter demo`, the tests and the benchmarks; plugin authors can use it for their own end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from refund_adapter_generic import standard_webhooks

from .sandbox import RunningSandbox, SandboxConfig, run_sandbox
from .web.protocol import SERVER_LOGGER

if TYPE_CHECKING:
    import pluggy

    from .config import Config
    from .store import RefundStore


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for apps that must know their URL before they start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` for the duration of the block; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None, logger=SERVER_LOGGER)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll `predicate` until true; TimeoutError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within:.0f}s")
        await asyncio.sleep(interval)


Samples = dict[str, dict[frozenset[tuple[str, str]], float]]  # sample (or family) name -> labels -> value


async def metric_samples(http: aiohttp.ClientSession, base_url: str) -> Samples:
    """`GET /metrics` of the adapter at `base_url`, parsed by prometheus-client's parser. Every family is there
    under its own name too, so a labelled counter never incremented (served without samples) is seen declared."""
    from prometheus_client.parser import text_string_to_metric_families

    async with http.get(base_url + "/metrics", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, {})
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


async def metric_value(http: aiohttp.ClientSession, base_url: str, name: str, **labels: str) -> float:
    """One sample of `GET /metrics`; 0 for a labelled counter whose labels were never incremented."""
    return (await metric_samples(http, base_url)).get(name, {}).get(frozenset(labels.items()), 0.0)


def signed_generic_webhook(secret: str, payload: dict[str, Any], msg_id: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a `generic` platform refund webhook, as a shop sends it."""
    body = json.dumps(payload).encode()
    headers = standard_webhooks.signed_headers(secret, msg_id, int(time.time()), body)
    headers["content-type"] = "application/json"
    return headers, body


@dataclass
class SimulatedShop:
    """A shop on the `generic` platform: receives signed result callbacks, idempotent on `webhook-id`.

    Results are delivered at least once: a sender that dies after a delivery but before recording it sends it
    again. The shop does what Standard Webhooks asks of a receiver: it acts on the first message of each
    `webhook-id` and acknowledges repeats without acting again, so each result is *reported* exactly once.
    `deliveries_per_refund` counts every signed delivery; a repeat whose body differs from the first is a sender
    defect and is kept in `changed_repeats`.

    Until `down_until` (a `time.monotonic()` reading) it is down, as a platform's API is during an outage: every
    callback is answered 503 and counted in `refused_while_down`."""

    secret: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # the result acted on, per refund
    deliveries: int = 0
    rejected_signatures: int = 0
    down_until: float = 0.0
    refused_while_down: int = 0
    deliveries_per_refund: Counter[str] = field(default_factory=Counter)
    changed_repeats: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _first_by_message: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def repeats(self) -> int:
        """Deliveries of a message already acted on."""
        return self.deliveries - len(self._first_by_message)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/callback", self._callback)
        return app

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        if time.monotonic() < self.down_until:
            self.refused_while_down += 1
            return web.Response(status=503, text="down for maintenance")
        try:
            standard_webhooks.verify(self.secret, request.headers, body, now=time.time())
        except standard_webhooks.WebhookVerificationError:
            self.rejected_signatures += 1
            return web.Response(status=401)
        self.deliveries += 1
        result = json.loads(body)
        self.deliveries_per_refund[result["refund_id"]] += 1
        first = self._first_by_message.setdefault(request.headers["webhook-id"], result)
        if first is result:
            self.results[result["refund_id"]] = result
        elif first != result:
            self.changed_repeats.append((first, result))
        return web.Response(text="ok")

    async def send_refund(
        self, session: aiohttp.ClientSession, adapter_url: str, shop_id: str, payload: dict[str, Any]
    ) -> int:
        """POST one refund webhook to the adapter; returns the HTTP status."""
        headers, body = signed_generic_webhook(self.secret, payload, f"msg-{payload['refund_id']}")
        async with session.post(f"{adapter_url}/webhooks/generic/{shop_id}", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status


TEST_ADMIN_TOKEN = "test-admin-token-0123456789"  # local_config's server.admin_token: the operator's routes exist
ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}  # what a test sends to /-/... and /metrics


def with_admin_token(config: Config, token: str = TEST_ADMIN_TOKEN) -> Config:
    """`config` with `server.admin_token` set, for a config built elsewhere (the demo's) that a test queries."""
    from .config import Secret

    return replace(config, server=replace(config.server, admin_token=Secret(token)))


def local_config(
    db_path: Path,
    port: int,
    *,
    partner: str,
    md5_key: str,
    gateway_url: str,
    platforms: Mapping[str, Any],
    server: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The raw config of an adapter on 127.0.0.1:`port`: a SQLite store at `db_path`, one MD5 Alipay account
    `main` at `gateway_url`, batches and reports retried quickly, TEST_ADMIN_TOKEN as the admin token. `server`
    adds to (or overrides) the server section; `sections` are further top-level sections (`alipay_query`, ...)."""
    return {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "admin_token": TEST_ADMIN_TOKEN, **(server or {})},
        "store": {"url": f"sqlite:///{db_path}"},
        "alipay": {
            "accounts": {
                "main": {"partner": partner, "sign_type": "MD5", "md5_key": md5_key, "gateway_url": gateway_url}
            }
        },
        "batching": {"max_wait_seconds": 0.05},
        "reporter": {"base_delay_seconds": 0.05, "max_delay_seconds": 0.5},
        **sections,
        "platforms": platforms,
    }


@dataclass
class AdapterLoop:
    """The adapter served on a real port, the Alipay sandbox behind it and a shop in front of it."""

    url: str  # the adapter's base URL
    app: web.Application
    sandbox: RunningSandbox
    shop_url: str  # the shop's base URL (a `SimulatedShop` takes callbacks at shop_url + "/callback")
    http: aiohttp.ClientSession

    @property
    def store(self) -> RefundStore:
        from .web.keys import ENGINE

        return self.app[ENGINE].store


@contextlib.asynccontextmanager
async def adapter_loop(
    config: Callable[[int, str, str], Config],
    *,
    sandbox: SandboxConfig | RunningSandbox,
    shop: SimulatedShop | str,
    pm: pluggy.PluginManager | None = None,
    request_timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[AdapterLoop]:
    """Run the sandbox (unless already running), serve the shop (a `SimulatedShop`, or the URL of a shop already
    served), then the app of `config(port, sandbox URL, shop URL)` on a free port, with a client session whose
    requests time out after `request_timeout` seconds (aiohttp's default when None). `clock` is the engine's
    (give the sandbox's `SandboxConfig.clock` too, to stand both at another moment)."""
    from .web.app import create_app

    running = contextlib.nullcontext(sandbox) if isinstance(sandbox, RunningSandbox) else run_sandbox(sandbox)
    shop_served = contextlib.nullcontext(shop) if isinstance(shop, str) else serve(shop.app())
    session_timeout = (
        aiohttp.client.DEFAULT_TIMEOUT if request_timeout is None else aiohttp.ClientTimeout(total=request_timeout)
    )
    async with (
        running as box,
        shop_served as shop_url,
        aiohttp.ClientSession(timeout=session_timeout) as http,
    ):
        port = free_port()
        app = create_app(config(port, box.url, shop_url), pm=pm, clock=clock)
        async with serve(app, port=port) as url:
            yield AdapterLoop(url, app, box, shop_url, http)
