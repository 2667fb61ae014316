"""What a running sandbox knows, shared by its faces, its notify sender and its admin API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from refund_adapter.channels.signing import SignatureScheme

from .config import SandboxConfig
from .faults import Faults
from .ledger import Ledger

if TYPE_CHECKING:
    from .mapi import ReceivedBatch
    from .notifier import Notification


class SandboxState:
    """Everything the simulated gateway knows; live, so tests and the demo can look inside."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.faults = Faults(config.faults)
        self.ledger = Ledger(config.partner, config.default_seller_balance, self.now)
        self.batches: dict[str, ReceivedBatch] = {}  # what the MAPI face received, by batch_no
        self.notifications: dict[str, Notification] = {}  # by notify_id
        self.held: list[tuple[Notification, SignatureScheme]] = []  # waiting for /sandbox/notifies/release
        self.session: aiohttp.ClientSession | None = None
        self.closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        for seed in config.trades:
            self.ledger.seed(seed)

    def now(self) -> datetime:
        """The gateway's clock (`SandboxConfig.clock`), as an aware UTC datetime."""
        return datetime.fromtimestamp(self.config.clock(), UTC)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run background work that shutdown cancels and awaits."""
        if self.closing.is_set():
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at shutdown so a hanging answer never holds the server open."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancel on Python 3.11
                await self.closing.wait()

    async def close(self) -> None:
        """Cancel and await every background task (tasks may spawn others while being cancelled)."""
        self.closing.set()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


STATE_KEY = web.AppKey("sandbox_state", SandboxState)
