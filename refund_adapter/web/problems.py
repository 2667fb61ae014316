"""RFC 9457 problem details: every error our endpoints answer has a stable `type` a client can branch on.

aiohttp's own errors (no route, wrong method, body too large) are answered as problems too, without a
middleware: a middleware would wrap every webhook in two more coroutine layers (about 2.5% of `serve`'s CPU per
webhook in bench/ingest.py), so the last route takes what no other route does and `read_body` reads bodies.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import HttpVersion11, hdrs, web

from ..untrusted import bounded, quote

PROBLEM_TYPE_PREFIX = "urn:refund-adapter:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem_json(status: int, slug: str, detail: str) -> str:
    """The document; `detail` may quote what a request sent, so it is bounded here, for every problem."""
    title = slug.replace("-", " ").capitalize()
    return json.dumps({"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": bounded(detail)})


def problem(status: int, slug: str, detail: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=_problem_json(status, slug, detail), content_type=PROBLEM_CONTENT_TYPE,
                        headers=headers)


def bad_request(slug: str, detail: str) -> web.HTTPBadRequest:
    """A 400 problem to raise from a helper deep in a handler (aiohttp sends a raised HTTPException as is)."""
    return web.HTTPBadRequest(text=_problem_json(400, slug, detail), content_type=PROBLEM_CONTENT_TYPE)


async def read_body(request: web.Request) -> bytes:
    """The whole body; over the app's `client_max_size` a 413 problem is raised (aiohttp's own is plain text),
    and a body that is not in its `Content-Encoding` (a gzip header over plain bytes) is a 400 problem."""
    try:
        return await request.read()
    except web.RequestPayloadError as exc:
        raise bad_request("malformed-body", f"the body could not be read: {quote(str(exc))}") from None
    except web.HTTPRequestEntityTooLarge as exc:
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.client_max_size, actual_size=request.content_length or 0,
            text=_problem_json(413, "body-too-large", exc.text or "the body is too large"),
            content_type=PROBLEM_CONTENT_TYPE,
        ) from None


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 20


async def read_form(request: web.Request) -> dict[str, str]:
    """The fields of an HTML form (the dashboard's forms are all urlencoded), first value of each. Anything else
    (multipart, a body that is not a form, too many fields) is a 400 problem: aiohttp's own `post()` raises a
    ValueError, a 500, on a multipart part without a name."""
    if request.content_type != FORM_CONTENT_TYPE:
        raise bad_request("malformed-body", f"a form must be sent as {FORM_CONTENT_TYPE}")
    try:
        pairs = parse_qsl((await read_body(request)).decode("utf-8", "replace"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise bad_request("malformed-body", f"a form has at most {MAX_FORM_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


async def expect_continue(request: web.Request) -> None:
    """Every route's `expect_handler`. aiohttp's default answers `Expect: 100-continue` as this does, but echoes
    any other value into a plain-text 417, and crashes into a 500 on a value that is not UTF-8."""
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=_problem_json(417, "expectation-failed", "only 100-continue is expected"),
                                        content_type=PROBLEM_CONTENT_TYPE)
    if request.version == HttpVersion11:  # what aiohttp's default does: HTTP/1.0 has no interim answers
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started


async def unrouted(request: web.Request) -> web.Response:
    """The last route, for every path and method: what no other route takes is a 404, or a 405 when another
    route has the path under other methods."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _, methods = await resource.resolve(request)  # no methods when the path does not match
            allowed |= methods
    if allowed:
        return problem(405, "method-not-allowed", f"{request.method} is not allowed here",
                       headers={"Allow": ", ".join(sorted(allowed))})
    return problem(404, "not-found", f"nothing is served at {request.path}")
