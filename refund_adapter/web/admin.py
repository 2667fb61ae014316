"""The operator's view: health, plugins, refunds, batches, dead letters, metrics. Read-mostly JSON."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..metrics import merged
from ..plugins import plugins_info
from ..store import ApprovalQueue
from . import admin_api
from .access import admin_only
from .admin_api import MAX_ID
from .keys import CONFIG, ENGINE, PLUGIN_MANAGER
from .problems import expect_continue, problem, read_body
from .views import refund_json

log = logging.getLogger(__name__)


async def plugins(request: web.Request) -> web.Response:
    return web.json_response(plugins_info(request.app[PLUGIN_MANAGER]))


# The body of one dead-letter retry: parsing JSON runs in one go on the event loop, and a megabyte of small ids
# takes tens of milliseconds (with the check of every id); 128 KiB is some 15,000 ids of seven digits.
MAX_RETRY_BODY_BYTES = 128 * 1024


async def platforms(request: web.Request) -> web.Response:
    """Each platform's shops, with what its plugin says of them (a webhook WooCommerce disabled, say)."""
    return web.json_response({
        name: [{"id": shop.id, "alipay_account": shop.alipay_account, **shop.extra} for shop in adapter.shops()]
        for name, adapter in sorted(request.app[ENGINE].platforms.items())
    })


async def clear_review(request: web.Request) -> web.Response:
    """An operator has looked at a refund flagged for review: the flag goes, the refund is otherwise unchanged."""
    refund_id = admin_api.parse_id(request.match_info["id"])
    ctx = request.app[ENGINE]
    refund = await ctx.store.clear_review(refund_id, ctx.clock()) if refund_id is not None else None
    if refund is None:
        return problem(404, "unknown-refund", "no such refund")
    log.info("refund %d: review flag cleared by the operator", refund_id)
    return web.json_response(refund_json(refund, request.app[CONFIG].alipay.accounts))


async def stats(request: web.Request) -> web.Response:
    return web.json_response(await request.app[ENGINE].store.counts())


async def retry_dead_letters(request: web.Request) -> web.Response:
    """Put dead letters back in the outbox: all, or `{"refund_ids": [...]}`."""
    ids = None
    if request.can_read_body:
        too_large = problem(413, "body-too-large", f"at most {MAX_RETRY_BODY_BYTES} bytes of refund_ids a request; "
                            "send several, or no body to retry every dead letter")
        if (request.content_length or 0) > MAX_RETRY_BODY_BYTES:
            return too_large  # refused unread
        body = await read_body(request)
        if len(body) > MAX_RETRY_BODY_BYTES:  # sent without a Content-Length
            return too_large
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            return problem(400, "malformed-body", "the body must be JSON")
        if not isinstance(payload, dict):
            return problem(400, "malformed-body", 'the body must be an object: {"refund_ids": [...]}')
        ids = payload.get("refund_ids")
        if ids is not None and not (isinstance(ids, list) and all(type(i) is int and 0 <= i < MAX_ID for i in ids)):
            return problem(400, "malformed-body", "refund_ids must be a list of integers from 0 to 2**63 - 1")
    ctx = request.app[ENGINE]
    count = await ctx.store.retry_dead_letters(ctx.clock(), ids)
    ctx.signals.reporter.set()
    return web.json_response({"requeued": count})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: gauges read from the store (refunds by state and report state, batches by state, refunds
    in review) beside this application's counters (refund_adapter/metrics.py)."""
    ctx = request.app[ENGINE]
    counts = await ctx.store.counts()
    families = []
    for name, label in (("refunds", "state"), ("reports", "report_state"), ("batches", "state")):
        family = GaugeMetricFamily(f"refund_adapter_{name}", f"{name} by {label}", labels=[label])
        for key, value in sorted(counts[name].items()):
            family.add_metric([key], value)
        families.append(family)
    families.append(GaugeMetricFamily("refund_adapter_refunds_in_review", "refunds flagged for an operator's review",
                                      value=counts["review"]["flagged"]))
    families += _outbox_families(counts["reports"], await ctx.store.oldest_pending_report(), ctx.clock())
    families += _approval_families(await ctx.store.approval_queue(limit=0), ctx.clock())

    class _Snapshot:
        def collect(self) -> list[GaugeMetricFamily]:
            return families

    families += merged(ctx.metrics.registry.collect(), ctx.engine_metrics())  # the engine's, if in its own process
    registry = CollectorRegistry()
    registry.register(_Snapshot())  # type: ignore[arg-type]
    return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")


def _outbox_families(reports: dict[str, int], oldest: float | None, now: float) -> list[GaugeMetricFamily]:
    """The outbox as an on-call engineer watches it: how many results wait, how long the oldest has, and how many
    were given up (dead letters, for an operator to retry)."""
    return [
        GaugeMetricFamily("refund_adapter_outbox_depth", "final results waiting to be reported to their platform",
                          value=reports.get("pending", 0)),
        GaugeMetricFamily("refund_adapter_outbox_oldest_age_seconds",
                          "how long the oldest waiting result has been final (0 when none waits)",
                          value=0.0 if oldest is None else max(0.0, now - oldest)),
        GaugeMetricFamily("refund_adapter_dead_letters", "results whose report was given up, waiting for an operator",
                          value=reports.get("dead", 0)),
    ]


def _approval_families(queue: ApprovalQueue, now: float) -> list[GaugeMetricFamily]:
    """Batches of mapi_pwd accounts waiting for the operator to approve them at Alipay, and for how long."""
    oldest = queue.oldest_created_at
    return [
        GaugeMetricFamily("refund_adapter_batches_awaiting_approval",
                          "batches waiting for an operator to approve them at Alipay (mapi_pwd accounts)",
                          value=queue.count),
        GaugeMetricFamily("refund_adapter_approval_oldest_age_seconds",
                          "how long the oldest batch awaiting approval has waited (0 when none waits)",
                          value=0.0 if oldest is None else max(0.0, now - oldest.timestamp())),
    ]


def add_routes(app: web.Application, admin_token: str | None) -> None:
    """The operator's endpoints (`/-/...`, `/metrics`) behind `admin_token`, and not served at all without one
    (closed by default: a 404 like any unknown path). Health is for anyone: health.py."""
    if admin_token is None:
        return
    get, post = app.router.add_get, app.router.add_post
    for add, path, handler in (
        (get, "/-/plugins", plugins),
        (get, "/-/platforms", platforms),
        (post, r"/-/refunds/{id:[0-9]{1,19}}/review/clear", clear_review),  # at most 19 ASCII digits: int() is cheap
        (get, "/-/stats", stats),
        (post, "/-/dead-letters/retry", retry_dead_letters),
        (get, "/metrics", metrics),
    ):
        add(path, admin_only(handler, admin_token), expect_handler=expect_continue)
    for method, path, handler in admin_api.ROUTES:
        app.router.add_route(method, path, admin_only(handler, admin_token), expect_handler=expect_continue)
