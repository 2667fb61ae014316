"""The plugin host: one `pluggy.PluginManager` per application (no module global), and the ways the core calls it.

Built-in platforms are loaded through the `refund_adapter` entry-point group exactly like third-party ones, so
the built-ins prove the path every plugin author takes.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import pluggy
from aiohttp import ClientSession

from . import hookspecs
from .hookspecs import PlatformsConfig
from .platform import PlatformAdapter, PluginData

GROUP = "refund_adapter"

logger = logging.getLogger(__name__)


class PluginError(Exception):
    """A plugin broke the contract (a duplicate platform, a non-adapter registered...): the app must not start."""


def create_plugin_manager(
    plugins_dir: str | Path | None = None, *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    """A manager with the hook specs, the installed entry-point plugins and every `*.py` of `plugins_dir`.

    `check_pending()` at the end turns a misspelled hook implementation into an error at start-up instead of
    a hook that silently never runs.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        pm.load_setuptools_entrypoints(GROUP)
    if plugins_dir is not None:
        _load_plugins_dir(pm, Path(plugins_dir))
    pm.check_pending()
    return pm


def _load_plugins_dir(pm: pluggy.PluginManager, directory: Path) -> None:
    """Import each `*.py` as a module named after its file, in name order so that hook order is reproducible."""
    if not directory.is_dir():
        raise PluginError(f"plugins_dir {directory} is not a directory")
    for path in sorted(directory.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"{GROUP}_plugins_dir_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot load plugin file {path}")
        module = importlib.util.module_from_spec(spec)
        # In sys.modules before running it, as an import would be: dataclasses and pickling look it up there.
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        pm.register(module, name=path.stem)


def _hookimpls(pm: pluggy.PluginManager, hook_name: str, argnames: Collection[str]) -> list[pluggy.HookImpl]:
    """A hook's implementations in pluggy's own calling order (last registered first), once `argnames` is checked.

    The core calls them one by one, instead of through `pm.hook`, to decide itself what one failure means:
    pluggy would stop at the first exception.
    """
    caller = getattr(pm.hook, hook_name)
    if caller.spec is None or set(caller.spec.argnames) != set(argnames):
        raise TypeError(f"hook {hook_name} is not called with {sorted(argnames)}")
    return list(reversed(caller.get_hookimpls()))


def _call(impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
    """Call one implementation with the arguments it asks for, as pluggy does (it may take fewer than the spec)."""
    return impl.function(*(kwargs[name] for name in impl.argnames))


def collect_platforms(
    pm: pluggy.PluginManager,
    config: PlatformsConfig,
    http: ClientSession,
    data_for: Callable[[str], PluginData] | None = None,
) -> dict[str, PlatformAdapter]:
    """Every adapter the plugins register, by platform name. A failure here stops the app: it cannot serve.

    A duplicate platform name is an error naming both plugins, never a silent override.
    """
    platforms: dict[str, PlatformAdapter] = {}
    owners: dict[str, str] = {}

    def register_for(plugin: str) -> Callable[[PlatformAdapter], None]:
        def register(adapter: PlatformAdapter) -> None:
            if not isinstance(adapter, PlatformAdapter):
                raise PluginError(f"plugin {plugin!r} registered {adapter!r}, which is not a PlatformAdapter")
            if adapter.name in owners:
                raise PluginError(
                    f"platform {adapter.name!r} is registered by both {owners[adapter.name]!r} and {plugin!r}"
                )
            platforms[adapter.name] = adapter
            owners[adapter.name] = plugin

        return register

    for impl in _hookimpls(pm, "register_platforms", ("register", "config", "http", "data")):
        data = data_for(impl.plugin_name) if data_for else None
        result = _call(impl, {"register": register_for(impl.plugin_name), "config": config, "http": http, "data": data})
        if inspect.iscoroutine(result):
            result.close()  # never awaited: close it so that Python does not warn about it later
            raise PluginError(f"plugin {impl.plugin_name!r}: register_platforms must not be a coroutine function")
    return platforms


def unknown_accounts(platforms: Mapping[str, PlatformAdapter], accounts: Collection[str]) -> list[str]:
    """Shops that name an Alipay account the configuration does not have, as `check-config` problems."""
    return [
        f"platforms.{name}: shop {shop.id!r} names alipay_account {shop.alipay_account!r}, which is not configured"
        for name, adapter in sorted(platforms.items())
        for shop in adapter.shops()
        if shop.alipay_account not in accounts
    ]


async def broadcast(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call every implementation of a notification hook, awaiting awaitables; one failing never stops the rest."""
    for impl in _hookimpls(pm, hook_name, kwargs):
        try:
            result = _call(impl, kwargs)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("plugin %r failed in hook %s", impl.plugin_name, hook_name)


def plugins_info(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """What `refund-adapter plugins` and `GET /-/plugins` show: name, version, distribution and hooks, as JSON data.

    The version and distribution are known only for plugins installed through the entry-point group.
    """
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    info = []
    for plugin in pm.get_plugins():
        dist = dists.get(id(plugin))
        info.append(
            {
                "name": pm.get_name(plugin),
                "version": dist.version if dist else None,
                "distribution": dist.project_name if dist else None,
                "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()),
            }
        )
    return sorted(info, key=lambda entry: entry["name"])
