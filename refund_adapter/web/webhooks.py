"""`POST /webhooks/{platform}[/...]`: verify through the platform's adapter, store, then answer."""

from __future__ import annotations

import logging

from aiohttp import web

from ..engine.intake import InvalidRequest, admit, conflicts
from ..failpoints import AFTER_ACCEPT, crash_point
from ..platform import InboundWebhook, WebhookRejected
from ..store import AcceptResult, StoreUnavailable
from ..untrusted import bounded, quote
from .keys import ENGINE
from .problems import problem, read_body

log = logging.getLogger(__name__)
STORE_RETRY_AFTER = "10"  # seconds; a full disk or a lost database connection is rarely over sooner


async def receive_webhook(request: web.Request) -> web.Response:
    ctx = request.app[ENGINE]
    platform = request.match_info["platform"]
    adapter = ctx.platforms.get(platform)
    if adapter is None:
        return problem(404, "unknown-platform", f"no platform plugin named {quote(platform)} is loaded")
    with ctx.pressure.webhook():  # engine loops wait for a pause in webhooks (engine/pressure.py)
        body = await read_body(request)
        inbound = InboundWebhook(
            platform=platform,
            subpath=request.match_info.get("tail", ""),
            headers=request.headers,
            query=request.query,
            body=body,
        )
        try:
            accepted = await adapter.receive(inbound)
            admitted = [admit(req, ctx.config.alipay.accounts) for req in accepted.requests]
        except WebhookRejected as exc:
            log.info("webhook %s refused: %s: %s", platform, exc.type, bounded(exc.detail))
            return problem(exc.status, exc.type, exc.detail)
        except InvalidRequest as exc:
            log.info("webhook %s refused: %s", platform, bounded(exc.detail))
            return problem(422, exc.type, exc.detail)
        if any(req.platform != platform for req in admitted):
            return problem(500, "plugin-error", f"plugin {platform!r} produced a request for another platform")
        if accepted.reconcile_soon:
            ctx.signals.platform_poller.set()
        if admitted:
            try:
                results = await ctx.store.accept(admitted, ctx.clock())  # durable before we answer
            except StoreUnavailable as exc:  # not on disk, so not acknowledged: the platform sends it again
                log.warning("webhook %s not stored (answered 503): %s", platform, exc)
                return problem(503, "store-unavailable", "the refund could not be stored; send it again later",
                               headers={"Retry-After": STORE_RETRY_AFTER})
            crash_point(AFTER_ACCEPT)
            ctx.signals.batcher.set()
            created = [r.refund for r in results if r.created]
            await ctx.announce_created(created)
            conflicting = conflicts(results, ctx.metrics)
            if conflicting:
                return _conflict(conflicting)
        return web.Response(status=accepted.status, body=accepted.body, content_type=accepted.content_type)


MAX_CONFLICTS_NAMED = 5


def _conflict(conflicting: list[AcceptResult]) -> web.Response:
    """409 for the whole webhook when any of its refunds conflicts with a stored one.

    Its other refunds are stored already (same commit) and a retry finds them identical, so nothing is lost;
    the conflicting one keeps its first content, so nothing is paid twice or differently. A 2xx would tell the
    platform its new version was taken; the 409 keeps the conflict visible to it, to be fixed on its side.
    The detail names fields, not values (no amounts or trade numbers echoed), and at most a few refunds."""
    named = "; ".join(f"refund {r.refund.request.platform_refund_id[:80]!r}: {', '.join(r.conflict)}"
                      for r in conflicting[:MAX_CONFLICTS_NAMED])
    more = len(conflicting) - MAX_CONFLICTS_NAMED
    detail = (f"already stored with other content ({named}{f'; and {more} more' if more > 0 else ''}); "
              "the stored refund was not changed")
    return problem(409, "refund-conflict", detail)
