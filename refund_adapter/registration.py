"""`register_platforms` for the common case, so a plugin does not repeat it: one platform, configured by its own
`platforms.<name>` section, registered only when that section is present."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession

from .hookspecs import PlatformsConfig, hookimpl
from .platform import PlatformAdapter, PluginData

# (the raw `platforms.<name>` section, the shared session, the plugin's data) -> the adapter
AdapterFactory = Callable[[Any, ClientSession, PluginData], PlatformAdapter]


def configured_platform(name: str, build: AdapterFactory) -> Callable[..., None]:
    """A `register_platforms` hook implementation that registers `build(section, http, data)` when the operator
    configured `platforms.<name>`, and nothing otherwise. Assign it in the plugin's module:

        register_platforms = configured_platform("acme", lambda section, http, data: Acme(parse(section), http))

    `build` validates the section (raising `ConfigError`), so a bad section stops the app with every problem.
    """

    @hookimpl(specname="register_platforms")
    def register_platforms(
        register: Callable[[PlatformAdapter], None], config: PlatformsConfig, http: ClientSession, data: PluginData
    ) -> None:
        section = config.platforms.get(name)
        if section is not None:
            register(build(section, http, data))

    register_platforms.__doc__ = f"Register the {name} platform when `platforms.{name}` is configured."
    return register_platforms
