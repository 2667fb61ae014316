"""The base of a platform's fake API: a real aiohttp server on 127.0.0.1 that records every request and can be
told to answer the next ones with an error (401, 404, 429, 5xx...) before its own handlers see them.

A plugin's fake subclasses it and adds the platform's routes in `routes`; the conformance suite drives it through
`answer_next` and reads `received` to see what the plugin sent.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from .servers import serve


@dataclass(frozen=True)
class Call:
    """One request the fake received, and the status it answered (0 while it is being answered)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return jsonlib.loads(self.body)


CallFilter = Callable[[Call], bool]


@dataclass
class _Scripted:
    status: int
    times: int
    when: CallFilter | None
    headers: Mapping[str, str]
    body: bytes


@dataclass
class FakePlatform:
    """A platform's API, faked: subclass it, add routes in `routes(app)`, serve it with `async with fake.running()`.

    `received` lists every request in the order they were answered; `answer_next` scripts errors.
    """

    url: str = ""  # the base URL, once served
    received: list[Call] = field(default_factory=list)
    _scripted: list[_Scripted] = field(default_factory=list, repr=False)

    def routes(self, app: web.Application) -> None:
        """Add the platform's routes (and middlewares of its own, such as an authentication check) to `app`."""
        raise NotImplementedError

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        self.routes(app)
        return app

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve the fake on a free port of 127.0.0.1 for the block; `url` is set meanwhile."""
        async with serve(self.app()) as url:
            self.url = url
            try:
                yield url
            finally:
                self.url = ""

    def answer_next(
        self,
        status: int,
        times: int = 1,
        *,
        when: CallFilter | None = None,
        body: str | bytes = "",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next `times` requests that `when` selects (every request when None) with `status` and `body`
        (or `json`), instead of the fake's own handlers: a 401 for refused credentials, a 429 with Retry-After,
        a 503 outage. Scripts are tried in the order they were given."""
        content = jsonlib.dumps(json).encode() if json is not None else body.encode() if isinstance(body, str) else body
        answer_headers = dict(headers or {})
        if json is not None:
            answer_headers.setdefault("Content-Type", "application/json")
        self._scripted.append(_Scripted(status, times, when, answer_headers, content))

    def answered(self, when: CallFilter | None = None) -> list[int]:
        """The statuses answered to the requests `when` selects (all when None), in order."""
        return [call.status for call in self.received if when is None or when(call)]

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        call = Call(request.method, request.path, dict(request.query), request.headers.copy(), await request.read())
        scripted = next((s for s in self._scripted if s.times > 0 and (s.when is None or s.when(call))), None)
        try:
            if scripted is not None:
                scripted.times -= 1
                response: web.StreamResponse = web.Response(status=scripted.status, body=scripted.body,
                                                            headers=scripted.headers)
            else:
                response = await handler(request)
        except web.HTTPException as exc:
            self.received.append(replace(call, status=exc.status))
            raise
        except Exception:
            self.received.append(replace(call, status=500))  # what aiohttp answers for it
            raise
        self.received.append(replace(call, status=response.status))
        return response
