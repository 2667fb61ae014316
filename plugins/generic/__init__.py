"""The built-in generic platform plugin, registered through the `refund_adapter` entry point like any other.

Configured by `platforms.generic`; when that section is absent the plugin registers nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import ClientSession

from refund_adapter import PlatformAdapter, hookimpl
from refund_adapter.hookspecs import PlatformsConfig

from .adapter import GenericPlatform
from .payload import PLATFORM
from .settings import parse_settings


@hookimpl
def register_platforms(
    register: Callable[[PlatformAdapter], None], config: PlatformsConfig, http: ClientSession
) -> None:
    """Register the generic platform when the operator configured it."""
    section = config.platforms.get(PLATFORM)
    if section is not None:
        register(GenericPlatform(parse_settings(section), http))
