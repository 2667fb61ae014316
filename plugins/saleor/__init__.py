"""Saleor platform plugin: `TRANSACTION_REFUND_REQUESTED` webhooks in, `transactionEventReport` out.

Written against the public plugin API alone (`refund_adapter.plugin_api`), registered through the
`refund_adapter` entry point like any third-party plugin; configured by `platforms.saleor`, and when that
section is absent the plugin registers nothing.
"""

from __future__ import annotations

import click

from refund_adapter.plugin_api import configured_platform, hookimpl

from .adapter import SaleorPlatform
from .commands import saleor
from .settings import NAME, parse_settings

__all__ = ["SaleorPlatform"]

register_platforms = configured_platform(
    NAME, lambda section, http, data: SaleorPlatform(parse_settings(section), http)
)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """`refund-adapter saleor ...`: the webhook and its subscription query, to paste into Saleor."""
    cli.add_command(saleor)
