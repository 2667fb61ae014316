"""Build an `EngineContext` from the configuration: the same in the web process and in the engine's own process,
so both see the same channels, platforms and plugins."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pluggy

from ..channels.accounts import open_channel
from ..config import Config
from ..metrics import Metrics
from ..platform import PluginData
from ..plugins import collect_platforms, unknown_accounts
from ..store import RefundStore
from .runtime import EngineContext

log = logging.getLogger(__name__)


def client_timeout(config: Config) -> aiohttp.ClientTimeout:
    """The one shared ClientSession's timeouts (never aiohttp's 300 s default)."""
    settings = config.http
    return aiohttp.ClientTimeout(total=settings.total_timeout_seconds, connect=settings.connect_timeout_seconds)


def engine_context(
    config: Config,
    store: RefundStore,
    session: aiohttp.ClientSession,
    pm: pluggy.PluginManager,
    clock: Callable[[], float] = time.time,
    **fields: Any,
) -> EngineContext:
    """The context over an open store and a shared session; `fields` set the context's other fields (the signals
    and loop health of an engine in another process)."""
    metrics = Metrics()
    channels = {
        name: open_channel(config, account, session, session.timeout, latency=metrics.gateway_latency)
        for name, account in config.alipay.accounts.items()
    }
    platforms = collect_platforms(pm, config, session, lambda plugin: PluginData(store, plugin, clock))
    for problem in unknown_accounts(platforms, config.alipay.accounts):
        log.error("%s: its refunds will be refused until the account is configured", problem)
    fields.setdefault("http", session)  # the approval reminder posts over it
    return EngineContext(config, store, channels, platforms, pm, clock, metrics=metrics, **fields)
