"""WooCommerce platform plugin: refunds from order webhooks, results written back, lost events recovered.

Registered through the `refund_adapter` entry point like any third-party plugin; configured by
`platforms.woocommerce`, and when that section is absent the plugin registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import ClientSession

from refund_adapter import PlatformAdapter, hookimpl
from refund_adapter.hookspecs import PlatformsConfig
from refund_adapter.platform import PluginData

from .adapter import WooCommercePlatform
from .mapping import NAME
from .settings import parse_settings


@hookimpl
def register_platforms(
    register: Callable[[PlatformAdapter], None], config: PlatformsConfig, http: ClientSession, data: PluginData
) -> None:
    """Register the WooCommerce platform when the operator configured it."""
    section = config.platforms.get(NAME)
    if section is not None:
        register(WooCommercePlatform(parse_settings(section), http, data))
