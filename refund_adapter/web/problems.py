"""RFC 9457 problem details: every error our endpoints answer has a stable `type` a client can branch on."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

PROBLEM_TYPE_PREFIX = "urn:refund-adapter:problem:"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, slug: str, detail: str) -> web.Response:
    body = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": slug.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
    }
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


def admin_guard(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The operator's endpoints (`/-/...`, `/metrics`) need `Authorization: Bearer <token>`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/-/") or request.path == "/metrics":
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, token.encode()):
                return problem(401, "admin-token-required", "this endpoint needs Authorization: Bearer <token>")
        return await handler(request)

    return guard


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own HTTP errors (404, 405, 413...) answered as problems too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(exc.status, "http-error")
        return problem(exc.status, slug, exc.reason)
