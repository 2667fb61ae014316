"""The dashboard's pages: the summary, refunds (filters, search, keyset pages), a refund's timeline, batches, what
needs attention, batches awaiting approval, and the actions (retry a dead letter, re-query a batch, approve a batch
at Alipay) as POST forms with the CSRF token.

Thin, like the admin API whose parsing, store calls and actions they share (admin_api.py): a page reads what the
API would answer and renders it; an action is the API's action, then a redirect back (POST, redirect, GET)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final

from aiohttp import web
from multidict import MultiDict
from yarl import URL

from ..engine.approval import ApprovalRefused, make_approval_link
from ..engine.runtime import EngineContext
from ..models import BatchState, RefundState, ReportState
from ..store import JournalEntry, RefundFilter
from . import admin_api
from .access import HOME, Access, safe_next
from .chart import STACKS, bar_chart
from .keys import CONFIG, ENGINE
from .problems import Handler, bad_request, expect_continue, read_form
from .templating import render
from .views import channel_json

PAGE_SIZE: Final = 50
ATTENTION_SIZE: Final = 100
DATE_FIELDS: Final = ("from", "to")
NOTIFY_KINDS: Final = frozenset({"refund", "dback", "refund_refused", "dback_refused"})
# The flash an action leaves in the URL it redirects to (`?done=...`): the page says it in the reader's language.
DONE: Final = frozenset({"retried", "requeried",  # done; refused (admin_api.ActionRefused's slugs):
                         "unknown-refund", "not-a-dead-letter", "unknown-batch", "batch-not-queryable",
                         "not-awaiting-approval", "approval-being-checked"})  # (ApprovalRefused's)
APPROVALS_SIZE: Final = 100
# Longest approval link the Approve button redirects to; a longer one (a batch of hundreds of refunds) is a form
# POSTed to the gateway instead: servers and proxies refuse request lines of more than some 8 KB.
MAX_REDIRECT_URL: Final = 4000


def _cleaned(request: web.Request) -> web.Request:
    """The request with the form's empty fields dropped and its dates read in the operator's zone: a GET form
    sends every field, and `<input type=date>` a bare date (the API reads a bare date as UTC)."""
    zone = request.app[CONFIG].admin.zone
    query: MultiDict[str] = MultiDict()
    for key, value in request.query.items():
        if not value:
            continue
        if key in DATE_FIELDS and len(value) == len("2026-12-07"):
            try:
                day = datetime.fromisoformat(value)
            except ValueError:
                pass  # left as it is: the API's parser refuses it with its own words
            else:
                value = (day.replace(tzinfo=zone) if zone else day.astimezone()).isoformat()
        query.add(key, value)
    return request.clone(rel_url=request.rel_url.with_query(query))


def _page_link(request: web.Request, **moved: int) -> str:
    kept = {key: value for key, value in request.query.items() if value and key not in ("before", "after", "done")}
    return str(request.rel_url.with_query({**kept, **moved}))


async def summary_page(request: web.Request) -> web.Response:
    """The home page: the last 24 hours and 30 days."""
    ctx = request.app[ENGINE]
    windows = []
    for window in admin_api.WINDOWS:
        summary = await admin_api.window_summary(ctx, window)
        windows.append({"name": window, "summary": summary, "chart": bar_chart(summary.series)})
    waiting = await ctx.store.approval_queue(limit=0)
    return render("admin/summary.html", request, {"windows": windows, "stacks": STACKS, "waiting": waiting})


async def refunds_page(request: web.Request) -> web.Response:
    cleaned = _cleaned(request)
    where = admin_api.refund_filter(cleaned)
    before, after = admin_api.query_id(cleaned, "before"), admin_api.query_id(cleaned, "after")
    config = request.app[CONFIG]
    page = await request.app[ENGINE].store.find_refunds(where, limit=PAGE_SIZE, before_id=before, after_id=after)
    refunds = page.refunds
    newer = _page_link(request, after=refunds[0].id) if refunds and (before or after) else None
    older = _page_link(request, before=page.older) if page.older is not None else None
    return render("admin/refunds.html", request, {
        "refunds": refunds, "older": older, "newer": newer, "form": request.query,
        "refund_states": [s.value for s in RefundState], "report_states": [s.value for s in ReportState],
        "platforms": sorted(config.platforms), "accounts": sorted(config.alipay.accounts),
    })


def _timeline_rows(entries: list[JournalEntry]) -> list[JournalEntry]:
    """A refund's events without its report attempts, which the page shows in their own table."""
    return [entry for entry in entries if entry.kind != "report"]


async def refund_page(request: web.Request) -> web.Response:
    store = request.app[ENGINE].store
    refund_id = admin_api.path_id(request)
    refund = None if refund_id is None else await store.get_refund(refund_id)
    if refund is None:
        return render("admin/not_found.html", request, {"what": "refund"}, status=404)
    history = await admin_api.refund_history(store, refund)
    batches = [{
        "batch": batch,
        "requests": [entry for entry in events if entry.kind == "submit" and "request" in entry.detail],
        "notifies": [entry for entry in events if entry.kind in NOTIFY_KINDS],
    } for batch, events in history.batches]
    return render("admin/refund.html", request, {
        "refund": refund, "timeline": _timeline_rows(history.timeline), "batches": batches,
        "channel": channel_json(refund.request, request.app[CONFIG].alipay.accounts),
        "reports": [entry for entry in history.timeline if entry.kind == "report"],
        "done": _done(request),
    })


async def batches_page(request: web.Request) -> web.Response:
    state = request.query.get("state") or None
    if state is not None and state not in BatchState.__members__.values():
        raise bad_request("invalid-filter", "unknown state")
    before = admin_api.query_id(request, "before")
    overviews = await request.app[ENGINE].store.batch_overviews(
        state=BatchState(state) if state else None, limit=PAGE_SIZE, before_id=before)
    older = _page_link(request, before=overviews[-1].batch.id) if len(overviews) == PAGE_SIZE else None
    return render("admin/batches.html", request, {
        "overviews": overviews, "older": older, "state_filter": state or "",
        "batch_states": [s.value for s in BatchState],
    })


async def batch_page(request: web.Request) -> web.Response:
    store = request.app[ENGINE].store
    batch_id = admin_api.path_id(request)
    batch = None if batch_id is None else await store.get_batch(batch_id)
    if batch is None:
        return render("admin/not_found.html", request, {"what": "batch"}, status=404)
    return render("admin/batch.html", request, {
        "batch": batch, "events": await store.batch_journal(batch.id), "done": _done(request),
        "queryable": batch.state in (BatchState.SUBMITTED, BatchState.UNKNOWN, BatchState.REVIEW),
        "awaiting": batch.state is BatchState.AWAITING_APPROVAL,
    })


async def approvals_page(request: web.Request) -> web.Response:
    """Batches of mapi_pwd accounts waiting for the operator to approve them at Alipay, oldest first."""
    queue = await request.app[ENGINE].store.approval_queue(limit=APPROVALS_SIZE)
    return render("admin/approvals.html", request, {"queue": queue, "done": _done(request)})


async def approve_action(request: web.Request) -> web.StreamResponse:
    """Approve at Alipay: the batch's signed password-refund link, made now, as a redirect (or, too long for one,
    a form the operator sends to the gateway). Only here, behind the session and its CSRF token."""
    batch_id = admin_api.path_id(request)
    try:
        made = await make_approval_link(request.app[ENGINE], batch_id)
    except ApprovalRefused as refused:
        return await _back(request, f"/admin/batches/{batch_id}", refused.slug)
    approval = made.approval
    if len(approval.url) <= MAX_REDIRECT_URL:
        raise web.HTTPSeeOther(approval.url)
    return render("admin/approve.html", request, {"batch": made.batch, "approval": approval})


async def attention_page(request: web.Request) -> web.Response:
    """What an operator must act on: dead letters, refunds in review, batches in review."""
    store = request.app[ENGINE].store
    dead = await store.find_refunds(RefundFilter(report_state=ReportState.DEAD), limit=ATTENTION_SIZE)
    review = await store.find_refunds(RefundFilter(review=True), limit=ATTENTION_SIZE)
    batches = await store.batch_overviews(state=BatchState.REVIEW, limit=ATTENTION_SIZE)
    return render("admin/attention.html", request, {
        "dead": dead.refunds, "review": review.refunds, "batches": batches, "done": _done(request),
    })


def _done(request: web.Request) -> str | None:
    done = request.query.get("done")
    return done if done in DONE else None


async def _back(request: web.Request, fallback: str, done: str) -> web.StreamResponse:
    """Back to the page the form was on (a dashboard path only), saying what was done."""
    form = await read_form(request)
    target = URL(safe_next(form.get("next") or fallback))
    raise web.HTTPSeeOther(str(target.update_query(done=done)))


def _action(act: Callable[[EngineContext, int | None], Awaitable[Any]], page: str, done: str) -> Handler:
    """A form's POST: the admin API's action on the id in the path, then back to `page` saying what happened."""

    async def handler(request: web.Request) -> web.StreamResponse:
        target_id = admin_api.path_id(request)
        try:
            await act(request.app[ENGINE], target_id)
        except admin_api.ActionRefused as refused:
            return await _back(request, f"{page}/{target_id}", refused.slug)
        return await _back(request, f"{page}/{target_id}", done)

    return handler


retry_action = _action(admin_api.retry_dead_letter, "/admin/refunds", "retried")
requery_action = _action(admin_api.requery_now, "/admin/batches", "requeried")


def add_routes(app: web.Application, access: Access) -> None:
    get, post, options = app.router.add_get, app.router.add_post, {"expect_handler": expect_continue}
    pages: Mapping[str, Any] = {
        HOME: summary_page,
        "/admin/refunds": refunds_page,
        r"/admin/refunds/{id:[0-9]{1,19}}": refund_page,
        "/admin/batches": batches_page,
        r"/admin/batches/{id:[0-9]{1,19}}": batch_page,
        "/admin/attention": attention_page,
        "/admin/approvals": approvals_page,
    }
    for path, handler in pages.items():
        get(path, access.page(handler), **options)
    post(r"/admin/refunds/{id:[0-9]{1,19}}/retry", access.action(retry_action), **options)
    post(r"/admin/batches/{id:[0-9]{1,19}}/requery", access.action(requery_action), **options)
    post(r"/admin/batches/{id:[0-9]{1,19}}/approve", access.action(approve_action), **options)
