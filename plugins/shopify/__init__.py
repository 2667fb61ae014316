"""Shopify platform plugin: refund webhooks, payments-app refund sessions, results written back.

Registered through the `refund_adapter` entry point like any third-party plugin; configured by
`platforms.shopify` (nothing is registered when that section is absent). Plugins that settle Shopify payments
record which Alipay trade paid each one with `PaymentBook.in_store(store).record([Payment(...)])`.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from aiohttp import ClientSession

from refund_adapter import PlatformAdapter, hookimpl
from refund_adapter.hookspecs import PlatformsConfig
from refund_adapter.platform import PluginData

from .adapter import ShopifyPlatform
from .commands import shopify
from .payments import Payment, PaymentBook
from .settings import NAME, parse_settings

__all__ = ["Payment", "PaymentBook", "ShopifyPlatform"]


@hookimpl
def register_platforms(
    register: Callable[[PlatformAdapter], None], config: PlatformsConfig, http: ClientSession, data: PluginData
) -> None:
    """Register Shopify when the operator configured it."""
    section = config.platforms.get(NAME)
    if section is not None:
        register(ShopifyPlatform(parse_settings(section), http, data))


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`refund-adapter shopify ...`: loading the payment book."""
    cli.add_command(shopify)
