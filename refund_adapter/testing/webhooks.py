"""A platform's webhook delivery as a test builds it, and posting it to the adapter at `/webhooks/{platform}/...`.

Signing is the plugin's own business: build the headers with `refund_adapter.plugin_api`'s HMAC helpers (or your
platform's scheme) and hand them over here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import aiohttp


@dataclass(frozen=True)
class Webhook:
    """One delivery: its headers and exact body, to `/webhooks/{platform}/{subpath}` (`subpath` "" for none)."""

    headers: Mapping[str, str]
    body: bytes
    subpath: str = ""
    query: Mapping[str, str] = field(default_factory=dict)

    def without(self, *header_names: str) -> Webhook:
        """The same delivery without the named headers (any case)."""
        dropped = {name.lower() for name in header_names}
        return replace(self, headers={k: v for k, v in self.headers.items() if k.lower() not in dropped})


def webhook_url(base_url: str, platform: str, webhook: Webhook) -> str:
    return f"{base_url}/webhooks/{platform}" + (f"/{webhook.subpath}" if webhook.subpath else "")


async def post_webhook(
    http: aiohttp.ClientSession, base_url: str, platform: str, webhook: Webhook
) -> tuple[int, bytes]:
    """POST `webhook` to the adapter at `base_url`; its status and body."""
    async with http.post(
        webhook_url(base_url, platform, webhook), data=webhook.body, headers=dict(webhook.headers),
        params=dict(webhook.query),
    ) as resp:
        return resp.status, await resp.read()
