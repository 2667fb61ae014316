"""Typed application keys: everything the handlers need, set up once per app (no module globals)."""

from __future__ import annotations

import aiohttp
import pluggy
from aiohttp import web

from ..config import Config
from ..engine.runtime import EngineContext
from .access import Access

CONFIG = web.AppKey("config", Config)
PLUGIN_MANAGER = web.AppKey("plugin_manager", pluggy.PluginManager)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ENGINE = web.AppKey("engine", EngineContext)
ACCESS = web.AppKey("access", Access)  # only when server.admin_token is set
