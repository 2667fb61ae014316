"""The built-in generic platform plugin, registered through the `refund_adapter` entry point like any other.

Configured by `platforms.generic`; when that section is absent the plugin registers nothing.
"""

from __future__ import annotations

from refund_adapter.plugin_api import configured_platform

from .adapter import GenericPlatform
from .payload import PLATFORM
from .settings import parse_settings

register_platforms = configured_platform(
    PLATFORM, lambda section, http, data: GenericPlatform(parse_settings(section), http)
)
