"""A kit for running the whole loop on one machine: free ports, serving apps, polling with a deadline, and
a simulated shop for the `generic` platform. Used by `refund-adapter demo`, the tests and the benchmarks;
plugin authors can use it for their own end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from refund_adapter_generic import standard_webhooks


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for apps that must know their URL before they start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` for the duration of the block; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None)
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


def signed_generic_webhook(secret: str, payload: dict[str, Any], msg_id: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of a `generic` platform refund webhook, as a shop sends it."""
    body = json.dumps(payload).encode()
    headers = standard_webhooks.signed_headers(secret, msg_id, int(time.time()), body)
    headers["content-type"] = "application/json"
    return headers, body


@dataclass
class SimulatedShop:
    """A shop on the `generic` platform: receives signed result callbacks and remembers the last per refund."""

    secret: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: int = 0
    rejected_signatures: int = 0
    fail_next: int = 0  # answer 503 to this many callbacks (to exercise the reporter's retries)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/callback", self._callback)
        return app

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            standard_webhooks.verify(self.secret, request.headers, body, now=time.time())
        except standard_webhooks.WebhookVerificationError:
            self.rejected_signatures += 1
            return web.Response(status=401)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        self.deliveries += 1
        result = json.loads(body)
        self.results[result["refund_id"]] = result
        return web.Response(text="ok")

    async def send_refund(
        self, session: aiohttp.ClientSession, adapter_url: str, shop_id: str, payload: dict[str, Any]
    ) -> int:
        """POST one refund webhook to the adapter; returns the HTTP status."""
        headers, body = signed_generic_webhook(self.secret, payload, f"msg-{payload['refund_id']}")
        async with session.post(f"{adapter_url}/webhooks/generic/{shop_id}", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status
