"""The sandbox as an aiohttp application: one state, the faces it serves, its admin API, and ways to run it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from . import admin, mapi, openapi, pwd
from .config import SandboxConfig
from .state import STATE_KEY, SandboxState


def create_sandbox_app(config: SandboxConfig) -> web.Application:
    """The simulated gateway as an aiohttp app; its notify session and tasks live in cleanup_ctx."""
    app = web.Application()
    state = SandboxState(config)
    app[STATE_KEY] = state

    async def notify_session(_: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=config.notify_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            state.session = session
            yield
            await state.close()

    async def release_hangs(_: web.Application) -> None:
        state.closing.set()

    app.cleanup_ctx.append(notify_session)
    app.on_shutdown.append(release_hangs)
    mapi.add_routes(app)
    openapi.add_routes(app)
    pwd.add_routes(app)
    admin.add_routes(app)
    return app


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox listening on a real port."""

    base_url: str
    state: SandboxState

    @property
    def url(self) -> str:
        """The gateway URL a client is configured with."""
        return self.base_url + mapi.GATEWAY_PATH

    @property
    def openapi_url(self) -> str:
        """The OpenAPI gateway URL a `channel: openapi` account is configured with."""
        return self.base_url + openapi.GATEWAY_PATH


@contextlib.asynccontextmanager
async def run_sandbox(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningSandbox]:
    """Serve the sandbox on host:port (0 picks a free port) for the duration of the block."""
    app = create_sandbox_app(config)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]
        yield RunningSandbox(f"http://{host}:{bound_port}", app[STATE_KEY])
    finally:
        await runner.cleanup()


async def serve_sandbox(
    config: SandboxConfig, host: str, port: int, on_ready: Callable[[RunningSandbox], None]
) -> None:
    """Run until SIGINT or SIGTERM (the `refund-adapter sandbox` command)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_sandbox(config, host, port) as sandbox:
        on_ready(sandbox)
        await stop.wait()
