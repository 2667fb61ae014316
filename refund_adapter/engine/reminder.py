"""Tells someone when batches have waited too long for an operator's approval at Alipay (`mapi_pwd` accounts):
a JSON POST to `approval.reminder_url` once something waits longer than `approval.reminder_after_seconds`, and
again each time that long passes while it still waits. The dashboard's count and the gauges say the same to
whoever looks; this reaches whoever does not."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from .runtime import EngineContext

log = logging.getLogger(__name__)


@dataclass
class ApprovalReminder:
    """When the last reminder was taken (this process's memory: a restart reminds again, at most once more)."""

    sent_at: float | None = None

    async def remind_once(self, ctx: EngineContext) -> bool:
        """Send a reminder if one is due; never more work to drain at once (False)."""
        settings = ctx.config.approval
        if settings.reminder_url is None or ctx.http is None:
            return False
        now = ctx.clock()
        if self.sent_at is not None and now - self.sent_at < settings.reminder_after_seconds:
            return False
        queue = await ctx.store.approval_queue(limit=0)
        oldest = queue.oldest_created_at
        if oldest is None or now - oldest.timestamp() < settings.reminder_after_seconds:
            return False
        body = {"batches_awaiting_approval": queue.count, "total": str(queue.total),
                "oldest_created_at": oldest.isoformat(), "oldest_waiting_seconds": int(now - oldest.timestamp()),
                "approve_at": ctx.config.server.public_url.rstrip("/") + "/admin/approvals"}
        try:
            async with ctx.http.post(settings.reminder_url, json=body) as resp:
                await resp.read()
                delivered = resp.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("approval reminder not delivered: %s", exc)
            return False
        if delivered:
            self.sent_at = now
            log.info("approval reminder sent: %d batches waiting, the oldest for %ds", queue.count,
                     body["oldest_waiting_seconds"])
        else:
            log.warning("approval reminder refused: HTTP %d", resp.status)
        return False
