"""Alipay's MAPI notifies (refund and 充退). The body is exactly `success` only once the result is committed."""

from __future__ import annotations

import logging

from aiohttp import web

from ..channels.base import NotifyKind
from ..channels.mapi.channel import DBACK, REFUND
from ..engine.alipay_notifies import FAIL, handle_notify
from ..logs import bind_request_id
from ..store import StoreUnavailable
from .keys import ENGINE
from .problems import read_body

log = logging.getLogger(__name__)
UNAVAILABLE = "unavailable"  # the notifies counter's outcome when the store failed (answered fail: sent again)


async def refund_notify(request: web.Request) -> web.Response:
    return await _answer(request, REFUND)


async def dback_notify(request: web.Request) -> web.Response:
    return await _answer(request, DBACK)


async def _answer(request: web.Request, kind: NotifyKind) -> web.Response:
    bind_request_id(request.headers)
    ctx = request.app[ENGINE]
    try:
        answer = await handle_notify(ctx, await _body(request), kind)
    except StoreUnavailable as exc:  # not recorded: anything but `success` makes Alipay send it again
        ctx.metrics.notifies.labels(kind.name, UNAVAILABLE).inc()
        log.warning("alipay %s notify not recorded (answered fail): %s", kind.name, exc)
        return web.Response(status=503, text=FAIL)
    ctx.metrics.notifies.labels(kind.name, answer.outcome).inc()
    return web.Response(text=answer.body)


async def _body(request: web.Request) -> bytes:
    """POST form body, or the query string of the GET form some examples show."""
    if request.method == "GET":
        return request.rel_url.raw_query_string.encode("ascii", "replace")
    return await read_body(request)
