"""Fixtures of the WooCommerce tests: a served fake store, the adapter wired to it, in-memory plugin data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from refund_adapter_woocommerce.adapter import WooCommercePlatform
from refund_adapter_woocommerce.settings import parse_settings

from refund_adapter import InboundWebhook
from refund_adapter.platform import PluginData
from refund_adapter.testing import serve

from .fake_woocommerce import CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET, FakeWooCommerce

LONG_AGO = "2020-01-01T00:00:00+00:00"


class MemoryData:
    """The two store methods `PluginData` uses, over a dict."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    async def plugin_data_get(self, plugin: str, key: str) -> str | None:
        return self.items.get(f"{plugin}/{key}")

    async def plugin_data_put(self, plugin: str, items: Mapping[str, str], now: float) -> None:
        self.items |= {f"{plugin}/{key}": value for key, value in items.items()}


def shop_section(url: str, **overrides: Any) -> dict[str, Any]:
    """One shop's raw settings; `refunds_since` far in the past unless a test is about it."""
    shop = {
        "url": url,
        "webhook_secret": WEBHOOK_SECRET,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "alipay_gateway_ids": ["alipay", "wenprise_alipay"],
        "alipay_account": "main",
        "refunds_since": LONG_AGO,
    }
    return {"shops": [{**shop, **overrides}]}


def inbound(headers: Mapping[str, str], body: bytes) -> InboundWebhook:
    """A delivery as the web layer hands it to the adapter."""
    return InboundWebhook(platform="woocommerce", subpath="", headers=CIMultiDict(headers), query={}, body=body)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWooCommerce]:
    shop = FakeWooCommerce()
    async with serve(shop.app()) as url:
        shop.url = url
        yield shop


@pytest.fixture
def memory() -> MemoryData:
    return MemoryData()


@pytest.fixture
def platform(fake: FakeWooCommerce, http: aiohttp.ClientSession, memory: MemoryData) -> WooCommercePlatform:
    return WooCommercePlatform(parse_settings(shop_section(fake.url)), http, PluginData(memory, "woocommerce"))
