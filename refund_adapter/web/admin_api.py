"""The admin JSON API an operator (the dashboard, the CLI, a script) finds and fixes refunds with: filtered keyset
pages of refunds, a refund's timeline, batches with their journals, dead letters, a summary, and the two actions
(re-query a batch, retry a dead letter). Documented in docs/admin_api.md, "Endpoints".

Thin: every parameter is checked here (anything malformed or unknown is a 400 problem, never a 500) and turned
into one store call; every list is bounded (`limit` at most MAX_LIMIT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web

from ..engine.approval import ApprovalRefused, make_approval_link
from ..engine.runtime import EngineContext
from ..models import Batch, BatchState, Refund, RefundState, ReportState
from ..store import JournalEntry, RefundFilter, RefundStore, Summary
from ..untrusted import quote
from .keys import CONFIG, ENGINE
from .problems import bad_request, problem
from .views import (
    batch_fields_json,
    batch_json,
    batch_overview_json,
    journal_json,
    json_list_response,
    refund_json,
    summary_json,
)

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

MAX_ID = 2**63  # ids are 64-bit: a larger one names no refund
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_TEXT = 200  # characters of a filter value (an order id, a trade_no, a shop...)
MAX_BATCHES_PER_REFUND = 12  # a refund moves batch only when one is split, at most log2(1000) times
REVIEW_FILTERS = {"true": True, "false": False}
PAGE_PARAMS = frozenset({"limit", "before", "after"})
REFUND_PARAMS = PAGE_PARAMS | {"state", "report_state", "review", "platform", "shop", "account", "from", "to", "q"}
DEAD_LETTER_PARAMS = PAGE_PARAMS | {"platform", "shop", "account"}
BATCH_PARAMS = frozenset({"limit", "before", "state"})
HOUR = 3600
# window -> (seconds, bucket of the chart's series)
WINDOWS = {"24h": (86_400, 3_600), "30d": (30 * 86_400, 86_400)}


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise bad_request("invalid-parameter", f"{name} is given {len(values)} times")
    return values[0] if values else None


def _only(request: web.Request, allowed: Iterable[str]) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise bad_request("invalid-parameter", f"unknown parameter {quote(unknown[0])}")


def _text(request: web.Request, name: str) -> str | None:
    value = _single(request, name)
    if value is None:
        return None
    if not value or len(value) > MAX_TEXT or not value.isprintable():
        raise bad_request("invalid-filter", f"{name} must be 1 to {MAX_TEXT} printable characters")
    return value


def parse_id(raw: str) -> int | None:
    """`raw` as a 64-bit id, or None: ASCII digits only (int() also takes "²" and full-width digits), and never
    int() of thousands of digits (Python refuses more than 4300, and each costs)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 0 < value < MAX_ID else None


def query_id(request: web.Request, name: str) -> int | None:
    raw = _single(request, name)
    if raw is None:
        return None
    value = parse_id(raw)
    if value is None:
        raise bad_request("invalid-parameter", f"{name} must be an id (a positive integer below 2**63)")
    return value


def _limit(request: web.Request) -> int:
    raw = _single(request, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT):
        raise bad_request("invalid-parameter", f"limit must be 1 to {MAX_LIMIT}")
    return int(raw)


def _enum(request: web.Request, name: str, kind: type[E]) -> E | None:
    raw = _single(request, name)
    if raw is None:
        return None
    if raw not in kind.__members__.values():
        raise bad_request("invalid-filter", f"unknown {name} {quote(raw)}")
    return kind(raw)


def _time(request: web.Request, name: str) -> float | None:
    """An ISO 8601 date or time; without an offset it is UTC."""
    raw = _single(request, name)
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw[:40])
    except ValueError:
        raise bad_request("invalid-filter", f"{name} must be an ISO 8601 date or time") from None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


def _page(request: web.Request) -> tuple[int, int | None, int | None]:
    limit, before, after = _limit(request), query_id(request, "before"), query_id(request, "after")
    if before is not None and after is not None:
        raise bad_request("invalid-parameter", "give before or after, not both")
    return limit, before, after


async def _with_links(
    request: web.Request, items: Sequence[T], to_json: Callable[[T], dict[str, Any]], newest: int | None,
    older: int | None,
) -> web.Response:
    """The page as a JSON array (built a slice per loop turn); the neighbouring pages as `Link` headers (RFC
    8288): `before=<older>`, and `after=<newest>` for a page that is not the first. A page may hold fewer items
    than asked for (even none) and still have a next one: see RefundPage."""
    links = []
    query = {key: value for key, value in request.query.items() if key not in ("before", "after")}
    if older is not None:
        links.append(f'<{request.rel_url.with_query({**query, "before": older})}>; rel="next"')
    if newest is not None:
        links.append(f'<{request.rel_url.with_query({**query, "after": newest})}>; rel="prev"')
    response = await json_list_response(items, to_json, per_turn=200)
    if links:
        response.headers["Link"] = ", ".join(links)
    return response


async def _refund_page(request: web.Request, where: RefundFilter) -> web.Response:
    limit, before, after = _page(request)
    page = await request.app[ENGINE].store.find_refunds(where, limit=limit, before_id=before, after_id=after)
    paged = (before is not None or after is not None) and page.refunds
    accounts = request.app[CONFIG].alipay.accounts
    return await _with_links(request, page.refunds, lambda refund: refund_json(refund, accounts),
                             page.refunds[0].id if paged else None, page.older)


def refund_filter(request: web.Request) -> RefundFilter:
    """The filters and search of a request for refunds (also the dashboard's); a 400 problem for anything else."""
    _only(request, REFUND_PARAMS)
    review = _single(request, "review")
    if review is not None and review not in REVIEW_FILTERS:
        raise bad_request("invalid-filter", "review must be true or false")
    return RefundFilter(
        state=_enum(request, "state", RefundState), report_state=_enum(request, "report_state", ReportState),
        platform=_text(request, "platform"), shop=_text(request, "shop"), account=_text(request, "account"),
        created_from=_time(request, "from"), created_to=_time(request, "to"), search=_text(request, "q"),
        review=None if review is None else REVIEW_FILTERS[review],
    )


async def list_refunds(request: web.Request) -> web.Response:
    """`GET /-/refunds`: filters, a search (`q`: order id, platform refund id, trade_no or batch_no), keyset pages."""
    return await _refund_page(request, refund_filter(request))


async def list_dead_letters(request: web.Request) -> web.Response:
    """`GET /-/dead-letters`: refunds whose report the platform never took, newest first."""
    _only(request, DEAD_LETTER_PARAMS)
    where = RefundFilter(report_state=ReportState.DEAD, platform=_text(request, "platform"),
                         shop=_text(request, "shop"), account=_text(request, "account"))
    return await _refund_page(request, where)


def path_id(request: web.Request) -> int | None:
    return parse_id(request.match_info["id"])


@dataclass(frozen=True)
class RefundHistory:
    """A refund's timeline, and each batch it was in (oldest first) with that batch's journal."""

    timeline: list[JournalEntry]
    batches: list[tuple[Batch, list[JournalEntry]]]


async def refund_history(store: RefundStore, refund: Refund) -> RefundHistory:
    timeline = await store.refund_journal(refund.id)
    batch_ids = [entry.detail["batch_id"] for entry in timeline if entry.kind == "batched"]
    batch_ids += [refund.batch_id] if refund.batch_id is not None else []
    batches = []
    for batch_id in list(dict.fromkeys(batch_ids))[-MAX_BATCHES_PER_REFUND:]:
        batch = await store.get_batch(batch_id)
        if batch is not None:
            batches.append((batch, await store.batch_journal(batch_id)))
    return RefundHistory(timeline, batches)


async def get_refund(request: web.Request) -> web.Response:
    """`GET /-/refunds/{id}`: the refund, its timeline, and each batch it was in with that batch's journal."""
    store = request.app[ENGINE].store
    refund_id = path_id(request)
    refund = None if refund_id is None else await store.get_refund(refund_id)
    if refund is None:
        return problem(404, "unknown-refund", "no such refund")
    history = await refund_history(store, refund)
    batches = [{**batch_fields_json(batch), "events": journal_json(events)} for batch, events in history.batches]
    accounts = request.app[CONFIG].alipay.accounts
    return web.json_response({**refund_json(refund, accounts), "timeline": journal_json(history.timeline),
                              "batches": batches})


async def list_batches(request: web.Request) -> web.Response:
    """`GET /-/batches`: newest first, each with its refunds counted by state (`GET /-/batches/{id}` lists them)."""
    _only(request, BATCH_PARAMS)
    limit = _limit(request)
    overviews = await request.app[ENGINE].store.batch_overviews(
        state=_enum(request, "state", BatchState), limit=limit, before_id=query_id(request, "before"))
    older = overviews[-1].batch.id if len(overviews) == limit else None
    return await _with_links(request, overviews, batch_overview_json, None, older)


async def get_batch(request: web.Request) -> web.Response:
    """`GET /-/batches/{id}`: the batch, its details and its journal."""
    store = request.app[ENGINE].store
    batch_id = path_id(request)
    batch = None if batch_id is None else await store.get_batch(batch_id)
    if batch is None:
        return problem(404, "unknown-batch", "no such batch")
    return web.json_response({**batch_json(batch), "events": journal_json(await store.batch_journal(batch.id))})


class ActionRefused(Exception):
    """An operator's action that cannot be done: the problem to answer (the dashboard shows its slug)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail = status, slug, detail


async def requery_now(ctx: EngineContext, batch_id: int | None) -> Batch:
    """Query Alipay about the batch now (the Alipay query's path), also for a batch waiting in review."""
    batch = None if batch_id is None else await ctx.store.get_batch(batch_id)
    if batch is None:
        raise ActionRefused(404, "unknown-batch", "no such batch")
    requeried = await ctx.store.requery_batch(batch.id, ctx.clock())
    if requeried is None:
        raise ActionRefused(409, "batch-not-queryable", f"a batch in state {batch.state.value} is not queried")
    ctx.signals.alipay_query.set()
    return requeried


async def retry_dead_letter(ctx: EngineContext, refund_id: int | None) -> int:
    """A dead letter back in the outbox, the reporter woken; returns how many were requeued (1)."""
    refund = None if refund_id is None else await ctx.store.get_refund(refund_id)
    if refund is None:
        raise ActionRefused(404, "unknown-refund", "no such refund")
    if refund.report_state is not ReportState.DEAD:
        raise ActionRefused(409, "not-a-dead-letter", f"its report is {refund.report_state.value}, not dead")
    requeued = await ctx.store.retry_dead_letters(ctx.clock(), [refund.id])
    ctx.signals.reporter.set()
    return requeued


async def requery_batch(request: web.Request) -> web.Response:
    """`POST /-/batches/{id}/requery`."""
    try:
        requeried = await requery_now(request.app[ENGINE], path_id(request))
    except ActionRefused as refused:
        return problem(refused.status, refused.slug, refused.detail)
    return web.json_response(batch_fields_json(requeried))


async def retry_refund(request: web.Request) -> web.Response:
    """`POST /-/refunds/{id}/retry`: a dead letter back in the outbox."""
    try:
        requeued = await retry_dead_letter(request.app[ENGINE], path_id(request))
    except ActionRefused as refused:
        return problem(refused.status, refused.slug, refused.detail)
    return web.json_response({"requeued": requeued})


async def approval_url(request: web.Request) -> web.Response:
    """`POST /-/batches/{id}/approve-url`: a fresh link for an operator to approve the batch at Alipay (today's)."""
    try:
        made = await make_approval_link(request.app[ENGINE], path_id(request))
    except ApprovalRefused as refused:
        return problem(refused.status, refused.slug, refused.detail)
    return web.json_response({"batch_id": made.batch.id, "reference": made.batch.reference,
                              "batch_no": made.batch.reference, "url": made.approval.url,
                              "expires_at": made.approval.expires_at.isoformat()})


async def window_summary(ctx: EngineContext, window: str) -> Summary:
    """The summary of the last `window` (a key of WINDOWS), up to now."""
    seconds, bucket = WINDOWS[window]
    until = (ctx.clock() // HOUR + 1) * HOUR  # the summary counts whole hours: up to the end of this one
    return await ctx.store.summary(until - seconds, until, bucket)


async def summary(request: web.Request) -> web.Response:
    """`GET /-/summary?window=24h|30d`."""
    _only(request, {"window"})
    window = _single(request, "window") or "24h"
    if window not in WINDOWS:
        raise bad_request("invalid-parameter", f"window must be one of {', '.join(WINDOWS)}")
    return web.json_response(summary_json(await window_summary(request.app[ENGINE], window)))


ROUTES = (
    ("GET", "/-/refunds", list_refunds),
    ("GET", r"/-/refunds/{id:[0-9]+}", get_refund),
    ("POST", r"/-/refunds/{id:[0-9]+}/retry", retry_refund),
    ("GET", "/-/batches", list_batches),
    ("GET", r"/-/batches/{id:[0-9]+}", get_batch),
    ("POST", r"/-/batches/{id:[0-9]+}/requery", requery_batch),
    ("POST", r"/-/batches/{id:[0-9]+}/approve-url", approval_url),
    ("GET", "/-/dead-letters", list_dead_letters),
    ("GET", "/-/summary", summary),
)
