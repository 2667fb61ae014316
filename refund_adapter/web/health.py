"""`/healthz` (the process answers: restart it when not) and `/readyz` (it can do its work: send it traffic when
so). Both open to anyone, as orchestrators and load balancers probe them without credentials; they say nothing
an outsider could use beyond which part is down."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .keys import ENGINE
from .problems import expect_continue, problem

STORE_CHECK_SECONDS = 2.0  # a store that takes longer to answer a one-row read is not ready, whatever the cause


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the store answers with every migration applied and every engine loop is alive and moving;
    else a 503 problem naming each reason."""
    ctx = request.app[ENGINE]
    reasons = []
    try:
        async with asyncio.timeout(STORE_CHECK_SECONDS):
            schema = await ctx.store.schema_problem()
        if schema is not None:
            reasons.append(f"store: {schema}")
    except Exception as exc:  # any failure to answer is the reason, whatever raised it
        reasons.append(f"store unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    engine = ctx.config.engine
    reasons += ctx.loops.problems(engine.yield_max_seconds + engine.lease_seconds)
    if reasons:
        return problem(503, "not-ready", "; ".join(reasons))
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, expect_handler=expect_continue)
    app.router.add_get("/readyz", readyz, expect_handler=expect_continue)
