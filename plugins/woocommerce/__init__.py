"""WooCommerce platform plugin: refunds from order webhooks, results written back, lost events recovered.

Registered through the `refund_adapter` entry point like any third-party plugin; configured by
`platforms.woocommerce`, and when that section is absent the plugin registers nothing.
"""

from __future__ import annotations

from refund_adapter.plugin_api import configured_platform

from .adapter import WooCommercePlatform
from .mapping import NAME
from .settings import parse_settings

register_platforms = configured_platform(
    NAME, lambda section, http, data: WooCommercePlatform(parse_settings(section), http, data)
)
