"""Fixtures of the Shopify tests: a fake shop served on 127.0.0.1, a refund store, the adapter between them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from refund_adapter_shopify.adapter import ShopifyPlatform
from refund_adapter_shopify.settings import parse_settings

from refund_adapter.platform import PluginData
from refund_adapter.store import RefundStore, store_from_url
from refund_adapter.testing import serve

from .fake_shopify import API_VERSION, DOMAIN, SECRET, TOKEN, FakeShopify


def shop_config(api_base_url: str, **overrides: Any) -> dict[str, Any]:
    """One shop's settings, as an operator writes them."""
    return {"domain": DOMAIN, "client_secrets": ["old-secret", SECRET], "access_token": TOKEN,
            "api_version": API_VERSION, "alipay_account": "main", "api_base_url": api_base_url} | overrides


def section(api_base_url: str, **overrides: Any) -> dict[str, Any]:
    return {"client_cert_header": "X-Client-Verify", "shops": [shop_config(api_base_url, **overrides)]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopify]:
    shop = FakeShopify()
    async with serve(shop.app()) as url:
        shop.url = url
        yield shop
    assert shop.violations == []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RefundStore]:
    refunds = store_from_url(f"sqlite:///{tmp_path / 'refunds.db'}")
    await refunds.open()
    yield refunds
    await refunds.close()


@pytest.fixture
def data(store: RefundStore) -> PluginData:
    return PluginData(store, "shopify")


def make_platform(
    fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData, **overrides: Any
) -> ShopifyPlatform:
    return ShopifyPlatform(parse_settings(section(fake.url, **overrides)), http, data)


@pytest.fixture
def platform(fake: FakeShopify, http: aiohttp.ClientSession, data: PluginData) -> ShopifyPlatform:
    return make_platform(fake, http, data)


async def queued(data: PluginData) -> list[str]:
    """The refund gids the test shop's webhooks queued: one `due:{shop}:{gid}` key each."""
    return [json.loads(value)["gid"] for value in (await data.items(f"due:{DOMAIN}:")).values()]
