"""`POST /webhooks/{platform}[/...]`: verify through the platform's adapter, store, then answer."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from ..engine.intake import InvalidRequest, admit, conflicts
from ..failpoints import AFTER_ACCEPT, crash_point
from ..logs import NOTICE, WRITE, LineSampler, bind_request_id
from ..metrics import UNKNOWN_PLATFORM, Metrics
from ..models import Refund
from ..platform import InboundWebhook, WebhookRejected
from ..store import AcceptResult, StoreUnavailable
from ..untrusted import bounded, quote
from .keys import ENGINE
from .problems import problem, read_body

log = logging.getLogger(__name__)
STORE_RETRY_AFTER = "10"  # seconds; a full disk or a lost database connection is rarely over sooner


async def receive_webhook(request: web.Request) -> web.Response:
    bind_request_id(request.headers)
    ctx = request.app[ENGINE]
    platform = request.match_info["platform"]
    adapter = ctx.platforms.get(platform)
    if adapter is None:
        log.info("webhook for unknown platform %s refused", quote(platform, 80))
        return _refused(ctx.metrics, UNKNOWN_PLATFORM, 404, "unknown-platform",
                        f"no platform plugin named {quote(platform)} is loaded")
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
            return _refused(ctx.metrics, platform, exc.status, exc.type, exc.detail)
        except InvalidRequest as exc:
            log.info("webhook %s refused: %s", platform, bounded(exc.detail))
            return _refused(ctx.metrics, platform, 422, exc.type, exc.detail)
        if any(req.platform != platform for req in admitted):
            log.error("webhook %s: its plugin produced a request for another platform", platform)
            ctx.metrics.webhook_answered(platform, "error")
            return problem(500, "plugin-error", f"plugin {platform!r} produced a request for another platform")
        if accepted.reconcile_soon:
            ctx.signals.platform_poller.set()
        if not admitted:
            ctx.metrics.webhook_answered(platform, "ignored")
            log.debug("webhook %s: nothing to refund", platform)
        else:
            try:
                results = await ctx.store.accept(admitted, ctx.clock())  # durable before we answer
            except StoreUnavailable as exc:  # not on disk, so not acknowledged: the platform sends it again
                ctx.metrics.webhook_answered(platform, "unavailable")
                log.warning("webhook %s not stored (answered 503): %s", platform, exc)
                return problem(503, "store-unavailable", "the refund could not be stored; send it again later",
                               headers={"Retry-After": STORE_RETRY_AFTER})
            crash_point(AFTER_ACCEPT)
            ctx.signals.batcher.set()
            created = [r.refund for r in results if r.created]
            await ctx.announce_created(created)
            conflicting = conflicts(results, ctx.metrics)  # each logged there
            if conflicting:
                ctx.metrics.webhook_answered(platform, "conflict")
                return _conflict(conflicting)
            _log_accepted(ctx.webhook_lines, platform, created, len(results))
            ctx.metrics.webhook_answered(platform, "accepted" if created else "duplicate")
        return web.Response(status=accepted.status, body=accepted.body, content_type=accepted.content_type)


_PROBLEM_TYPE = re.compile(r"[a-z0-9-]{1,64}")  # the slugs plugins raise; anything else is counted as "other"


def _refused(metrics: Metrics, platform: str, status: int, type_: str, detail: str) -> web.Response:
    metrics.webhook_answered(platform, "refused")
    metrics.webhook_refusals.labels(platform, type_ if _PROBLEM_TYPE.fullmatch(type_) else "other").inc()
    return problem(status, type_, detail)


MAX_REFUNDS_NAMED = 5  # in the line of one webhook: a webhook of thousands of refunds must not write a megabyte


def _log_accepted(sampler: LineSampler, platform: str, created: list[Refund], stored: int) -> None:
    """One INFO line per stored webhook: the refunds it created (id and key: the engine's lines name the id) and how
    many it only repeated; at most `sampler.burst` a second (logs.LineSampler)."""
    if not log.isEnabledFor(logging.INFO):
        return
    verdict = sampler.take()
    if verdict != WRITE:
        if verdict == NOTICE:
            log.info("more than %d webhooks stored this second: their lines are skipped until the next second"
                     " (refund_adapter_webhooks_total counts every one)", sampler.burst)
        return
    named = ", ".join(f"{r.id} ({quote(r.request.shop, 80)}/{quote(r.request.platform_refund_id, 80)})"
                      for r in created[:MAX_REFUNDS_NAMED])
    more = f" and {len(created) - MAX_REFUNDS_NAMED} more" if len(created) > MAX_REFUNDS_NAMED else ""
    log.info("webhook %s stored: %d new refunds%s%s, %d already stored", platform, len(created),
             f": {named}" if named else "", more, stored - len(created),
             extra={"refund_ids": [r.id for r in created[:MAX_REFUNDS_NAMED]]})


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
