"""Real servers on 127.0.0.1 for tests: a free port, an app served for the length of a block, and polling with a
deadline (never a sleep as synchronisation)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from ..web.protocol import SERVER_LOGGER


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for apps that must know their URL before they start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `app` for the duration of the block; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None, logger=SERVER_LOGGER)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll `predicate` until true; TimeoutError naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {within:.0f}s")
        await asyncio.sleep(interval)
