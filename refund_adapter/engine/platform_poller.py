"""Asks each platform adapter for refunds its webhooks may have missed (a platform that gave up retrying,
WooCommerce that never retries) and stores them like webhook refunds: idempotently, so known ones change
nothing. Each adapter decides how often it really polls its API; this loop (the platform poll,
`platform_poll` in the config) only gives it the chance."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from .intake import InvalidRequest, admit, conflicts
from .runtime import EngineContext

log = logging.getLogger(__name__)


class PlatformPoller:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.last_success: dict[str, datetime] = {}

    async def poll_once(self) -> bool:
        """One round over every platform; always False (nothing more to do until the next tick)."""
        for name, adapter in self.ctx.platforms.items():
            started = datetime.fromtimestamp(self.ctx.clock(), UTC)
            try:
                found = await adapter.reconcile(self.last_success.get(name))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("platform %s: reconcile failed; tried again next round", name)
                continue
            admitted = []
            for request in found:
                try:
                    admitted.append(admit(request, self.ctx.config.alipay.accounts))
                except InvalidRequest as exc:
                    log.warning("platform %s: reconciled refund %s refused: %s", name, request.key, exc.detail)
            if admitted:
                results = await self.ctx.store.accept(admitted, self.ctx.clock())
                conflicts(results, self.ctx.metrics)  # nobody to answer: a warning and a count
                created = [result.refund for result in results if result.created]
                if created:
                    log.info("platform %s: reconcile found %d refunds webhooks missed", name, len(created))
                    await self.ctx.announce_created(created)
                    self.ctx.signals.batcher.set()
            self.last_success[name] = started
        return False
