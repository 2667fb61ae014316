"""The whole loop on one machine: the Alipay sandbox, a platform's shop (simulated or faked) and the adapter
between them, each a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import aiohttp
from aiohttp import web

from .servers import free_port, serve

if TYPE_CHECKING:
    import pluggy

    from ..config import Config
    from ..sandbox import RunningSandbox, SandboxConfig
    from ..store import RefundStore


class ServesApp(Protocol):
    """A shop or a fake platform: anything that builds the aiohttp app it answers with."""

    def app(self) -> web.Application: ...


@dataclass
class AdapterLoop:
    """The adapter served on a real port, the Alipay sandbox behind it and a shop in front of it."""

    url: str  # the adapter's base URL
    app: web.Application
    sandbox: RunningSandbox
    shop_url: str  # the shop's base URL (a simulated shop takes callbacks at shop_url + "/callback")
    http: aiohttp.ClientSession

    @property
    def store(self) -> RefundStore:
        from ..web.keys import ENGINE

        return self.app[ENGINE].store


@contextlib.asynccontextmanager
async def adapter_loop(
    config: Callable[[int, str, str], Config],
    *,
    sandbox: SandboxConfig | RunningSandbox,
    shop: ServesApp | str,
    pm: pluggy.PluginManager | None = None,
    request_timeout: float | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[AdapterLoop]:
    """Run the sandbox (unless already running), serve the shop (anything with an `app()`, or the URL of a shop
    already served), then the app of `config(port, sandbox URL, shop URL)` on a free port, with a client session
    whose requests time out after `request_timeout` seconds (aiohttp's default when None). `clock` is the engine's
    (give the sandbox's `SandboxConfig.clock` too, to stand both at another moment)."""
    from ..sandbox import RunningSandbox, run_sandbox
    from ..web.app import create_app

    running = contextlib.nullcontext(sandbox) if isinstance(sandbox, RunningSandbox) else run_sandbox(sandbox)
    shop_served = contextlib.nullcontext(shop) if isinstance(shop, str) else serve(shop.app())
    session_timeout = (
        aiohttp.client.DEFAULT_TIMEOUT if request_timeout is None else aiohttp.ClientTimeout(total=request_timeout)
    )
    async with (
        running as box,
        shop_served as shop_url,
        aiohttp.ClientSession(timeout=session_timeout) as http,
    ):
        port = free_port()
        app = create_app(config(port, box.url, shop_url), pm=pm, clock=clock)
        async with serve(app, port=port) as url:
            yield AdapterLoop(url, app, box, shop_url, http)
