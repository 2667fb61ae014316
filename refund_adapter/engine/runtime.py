"""What every engine loop shares: the store, the channels, the platforms, the clock and the wake-up signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
import pluggy
from prometheus_client.metrics_core import Metric

from ..channels.base import RefundChannel
from ..config import Config
from ..logs import LineSampler
from ..metrics import Metrics
from ..models import Refund
from ..platform import PlatformAdapter
from ..plugins import broadcast
from ..store import RefundStore, StateChange, StateChanges, StoreUnavailable, any_final
from .health import LoopHealth
from .pressure import IngestPressure

log = logging.getLogger(__name__)


@dataclass
class Signals:
    """Wake a loop as soon as there is work for it instead of waiting for its next tick."""

    batcher: asyncio.Event = field(default_factory=asyncio.Event)
    submitter: asyncio.Event = field(default_factory=asyncio.Event)
    reporter: asyncio.Event = field(default_factory=asyncio.Event)
    alipay_query: asyncio.Event = field(default_factory=asyncio.Event)
    platform_poller: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class EngineContext:
    config: Config
    store: RefundStore
    channels: Mapping[str, RefundChannel]
    platforms: Mapping[str, PlatformAdapter]
    pm: pluggy.PluginManager
    clock: Callable[[], float] = time.time
    signals: Signals = field(default_factory=Signals)
    # Webhooks in flight; engine loops wait for a pause in them. start_engine applies `config.engine` to it.
    pressure: IngestPressure = field(default_factory=IngestPressure)
    metrics: Metrics = field(default_factory=Metrics)  # this application's counters (refund_adapter/metrics.py)
    loops: LoopHealth = field(default_factory=LoopHealth)  # the engine loops' heartbeats, for /readyz
    webhook_lines: LineSampler = field(default_factory=LineSampler)  # at most 100 stored-webhook lines a second
    # The engine's counters when it runs in a process of its own (engine/remote.py); /metrics adds them to these.
    engine_metrics: Callable[[], Iterable[Metric]] = lambda: ()
    http: aiohttp.ClientSession | None = None  # the app's one shared session (for the approval reminder)

    @property
    def listened(self) -> bool:
        """Whether any plugin implements `refund_state_changed` (else announcing costs nothing)."""
        return bool(self.pm.hook.refund_state_changed.get_hookimpls())

    async def announce(self, changes: Sequence[StateChange]) -> None:
        """Broadcast committed state changes to plugins and wake the reporter for final ones."""
        if self.listened and isinstance(changes, StateChanges):
            await changes.load()
        for change in changes if self.listened else ():
            await broadcast(
                self.pm, "refund_state_changed",
                refund=change.refund, old_state=change.old_state, new_state=change.refund.state,
            )
        if any_final(changes):
            self.signals.reporter.set()

    async def announce_created(self, refunds: Sequence[Refund]) -> None:
        if self.listened:
            await self.announce([StateChange(refund, None) for refund in refunds])
        elif any(refund.state.is_final for refund in refunds):  # refused at intake: the platform must learn why
            self.signals.reporter.set()


async def run_loop(
    name: str,
    wake: asyncio.Event,
    interval: float,
    step: Callable[[], Awaitable[bool]],
    before_cycle: Callable[[], Awaitable[None]] | None = None,
    beat: Callable[[], None] = lambda: None,
) -> None:
    """Call `step` until it reports no more work, then sleep until woken or `interval` passes; forever.

    Each cycle first awaits `before_cycle` (if given) once, then drains every step without waiting again:
    `IngestPressure.quiet` there delays a cycle for a bounded time but never caps how much it does.
    An exception in one step is logged and retried on the next tick: a loop over durable state loses nothing
    by starting again. `beat` is called as each cycle starts and after each step (engine/health.py).
    """
    while True:
        wake.clear()
        beat()
        try:
            if before_cycle is not None:
                await before_cycle()
            while True:
                more = await step()
                beat()
                if not more:
                    break
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as exc:  # a full disk, a lost connection: one line per tick, not a traceback
            log.warning("%s step: %s; retrying in %.1fs", name, exc, interval)
        except Exception:
            log.exception("%s step failed; retrying in %.1fs", name, interval)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that arrives as its
        # timeout fires, and the loop would then outlive its shutdown (seen: `serve` hung after SIGTERM).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await wake.wait()
