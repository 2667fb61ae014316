"""A shop on the generic platform, simulated: it sends signed refund webhooks and receives signed result
callbacks, idempotent on `webhook-id`. Used by `refund-adapter demo`, the chaos run, the tests and the benchmarks."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from . import standard_webhooks
from .payload import PLATFORM


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
        async with session.post(f"{adapter_url}/webhooks/{PLATFORM}/{shop_id}", data=body, headers=headers) as resp:
            await resp.read()
            return resp.status
