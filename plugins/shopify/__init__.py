"""Shopify platform plugin: refund webhooks, payments-app refund sessions, results written back.

Registered through the `refund_adapter` entry point like any third-party plugin; configured by
`platforms.shopify` (nothing is registered when that section is absent). Plugins that settle Shopify payments
record which Alipay trade paid each one with `PaymentBook.in_store(store).record([Payment(...)])`.
"""

from __future__ import annotations

import click

from refund_adapter.plugin_api import configured_platform, hookimpl

from .adapter import ShopifyPlatform
from .commands import shopify
from .payments import Payment, PaymentBook
from .settings import NAME, parse_settings

__all__ = ["Payment", "PaymentBook", "ShopifyPlatform"]


register_platforms = configured_platform(
    NAME, lambda section, http, data: ShopifyPlatform(parse_settings(section), http, data)
)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`refund-adapter shopify ...`: loading the payment book."""
    cli.add_command(shopify)
