"""THE plugin contract: one documented function per hook (see docs/plugin_hooks.md).

The marker name, the entry-point group and the command are all `refund_adapter`, so a plugin author writes
`from refund_adapter import hookimpl` and `[project.entry-points.refund_adapter]`. Hooks discover platforms and
broadcast notifications; they never route one refund (pluggy has no async support): the core awaits the
registered `PlatformAdapter` directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import click
import pluggy
from aiohttp import ClientSession, web

from .models import Refund, RefundState
from .platform import PlatformAdapter, PluginData

hookspec = pluggy.HookspecMarker("refund_adapter")
hookimpl = pluggy.HookimplMarker("refund_adapter")


class PlatformsConfig(Protocol):
    """All a plugin may read of the core configuration: its own raw `platforms.<name>` section."""

    @property
    def platforms(self) -> Mapping[str, Any]: ...


@hookspec
def register_platforms(
    register: Callable[[PlatformAdapter], None], config: PlatformsConfig, http: ClientSession, data: PluginData
) -> None:
    """Call `register(adapter)` once for each platform this plugin serves, synchronously, at app start.

    Read your settings from `config.platforms["<name>"]` (raw YAML, validated by you; register nothing when
    the section is absent). Keep `http`, the app's one shared session, for outgoing calls: never create one.
    `data` is this plugin's own durable key-value data in the refund store (namespaced by the plugin's name).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the `refund-adapter` command line: `cli.add_command(...)`, or decorate
    with `@cli.command()`.

    Called once when the command line is imported, for installed (entry-point) plugins only: `plugins_dir` is
    part of a configuration, which is not read yet. Prefix your commands with your plugin's name. A failure is
    reported on stderr and the plugin's commands are left out; the other commands still work.
    """


@hookspec
def startup(app: web.Application) -> Awaitable[None] | None:
    """The app's resources (store, shared session, platforms, engine loops) are ready and it is about to serve.

    A coroutine function is awaited. A failure is logged, not fatal: a side feature must not stop refunds.
    """


@hookspec
def refund_state_changed(
    refund: Refund, old_state: RefundState | None, new_state: RefundState
) -> Awaitable[None] | None:
    """A refund's state change has been committed (`refund.state == new_state`); awaitables are awaited.

    `old_state` is None when the refund has just been created from a webhook or a reconcile.

    Called in line by the engine loops and the webhook handler: keep it quick and hand slow work to a task of
    your own. A failure is logged and the other plugins are still called; the refund is not affected.
    """
