"""Alipay's notifies. The body is exactly `success` only once the result is committed."""

from __future__ import annotations

from aiohttp import web

from ..engine.notifications import DBACK, REFUND, handle_notify
from .keys import ENGINE
from .problems import read_body


async def refund_notify(request: web.Request) -> web.Response:
    answer = await handle_notify(request.app[ENGINE], await _body(request), REFUND)
    return web.Response(text=answer.body)


async def dback_notify(request: web.Request) -> web.Response:
    answer = await handle_notify(request.app[ENGINE], await _body(request), DBACK)
    return web.Response(text=answer.body)


async def _body(request: web.Request) -> bytes:
    """POST form body, or the query string of the GET form some examples show."""
    if request.method == "GET":
        return request.rel_url.raw_query_string.encode("ascii", "replace")
    return await read_body(request)
