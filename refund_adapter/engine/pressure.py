"""Engine loops give way to webhook intake during a burst, for a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from types import TracebackType


class IngestPressure:
    """Webhooks in flight, and when the last one finished.

    Everything runs on one event loop, and a platform gives up on a webhook after about 5 s and sends it again.
    So each engine cycle first awaits `quiet()`: background work starts once webhook traffic pauses, or after
    `max_seconds` at the latest. The cycle then drains all its work without waiting again: under sustained
    load the engine is late by at most `max_seconds` a cycle, never starved. `max_seconds == 0`: never wait.
    """

    def __init__(
        self, quiet_seconds: float = 0.05, max_seconds: float = 5.0, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.quiet_seconds = quiet_seconds
        self.max_seconds = max_seconds
        self.in_flight = 0
        self.last_finished = -math.inf
        self.waiting = 0  # engine loops inside quiet() right now
        self._clock = clock or time.monotonic  # read directly: no call through the running loop per webhook
        self._idle = asyncio.Event()  # set exactly when no webhook is in flight
        self._idle.set()
        self._mark = _Webhook(self)

    def configure(self, quiet_seconds: float, max_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self.max_seconds = max_seconds

    def webhook(self) -> _Webhook:
        """`with pressure.webhook():` around the handling of one webhook (two attribute updates, no task)."""
        return self._mark

    async def quiet(self) -> None:
        """Return once no webhook is in flight and none finished within `quiet_seconds`, or `max_seconds` after
        the call, whichever comes first. Cancellable."""
        if self.max_seconds <= 0:
            return
        self.waiting += 1
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that arrives as it times out.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_seconds):
                    while True:
                        if self.in_flight:
                            await self._idle.wait()
                            continue
                        remaining = self.last_finished + self.quiet_seconds - self._clock()
                        if remaining <= 0:
                            return
                        await asyncio.sleep(remaining)
        finally:
            self.waiting -= 1


class _Webhook:
    """The context manager of `IngestPressure.webhook()`; one per pressure, re-entrant (it only counts)."""

    __slots__ = ("_pressure",)

    def __init__(self, pressure: IngestPressure) -> None:
        self._pressure = pressure

    def __enter__(self) -> None:
        pressure = self._pressure
        pressure.in_flight += 1
        pressure._idle.clear()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pressure = self._pressure
        pressure.in_flight -= 1
        pressure.last_finished = pressure._clock()
        if not pressure.in_flight:
            pressure._idle.set()
