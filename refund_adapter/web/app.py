"""`create_app(config)`: the aiohttp application. Every resource lives in `cleanup_ctx`: the one shared
ClientSession, the store, the plugins' adapters and the engine loops, stopped in reverse order."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pluggy
from aiohttp import web
from yarl import URL

from ..config import Config
from ..engine import start_engine, stop_engine
from ..engine.assembly import client_timeout, engine_context
from ..engine.remote import EngineProcess
from ..plugins import broadcast, create_plugin_manager
from ..store import store_from_url
from . import admin, dashboard, health
from .access import Access
from .alipay import dback_notify, refund_notify
from .keys import ACCESS, CONFIG, ENGINE, HTTP, PLUGIN_MANAGER
from .problems import expect_continue, unrouted
from .templating import setup_templates
from .webhooks import receive_webhook

log = logging.getLogger(__name__)


def create_app(
    config: Config,
    *,
    pm: pluggy.PluginManager | None = None,
    clock: Callable[[], float] = time.time,
    run_engine: bool = True,
    engine_process: EngineProcess | None = None,
) -> web.Application:
    """The service. `run_engine=False` serves HTTP only (tests of the web layer, read-only tools);
    `engine_process`: the engine runs in that process of its own instead of on this one's loop (`serve`)."""
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[PLUGIN_MANAGER] = pm or create_plugin_manager(config.plugins_dir)
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_engine(clock, run_engine, engine_process))
    app.router.add_post("/webhooks/{platform}", receive_webhook, expect_handler=expect_continue)
    app.router.add_post("/webhooks/{platform}/{tail:.+}", receive_webhook, expect_handler=expect_continue)
    app.router.add_post("/alipay/notify", refund_notify, expect_handler=expect_continue)
    app.router.add_get("/alipay/notify", refund_notify, expect_handler=expect_continue)
    app.router.add_post("/alipay/dback-notify", dback_notify, expect_handler=expect_continue)
    app.router.add_get("/alipay/dback-notify", dback_notify, expect_handler=expect_continue)
    health.add_routes(app)
    token = config.server.admin_token.reveal() if config.server.admin_token else None
    if token is None:
        log.warning("the dashboard (/admin/), the admin API (/-/...) and /metrics are not served: set "
                    "server.admin_token (e.g. admin_token: ${REFUND_ADAPTER_ADMIN_TOKEN}) to serve them%s",
                    f"; /metrics is served on {config.metrics.listen}" if config.metrics.listen else "")
    else:
        app[ACCESS] = access = Access(token, clock=clock)
        setup_templates(app, config.admin, approval_origins(config))
        dashboard.add_routes(app, access)
    admin.add_routes(app, token)
    # last: answers what no route above takes, as a problem
    app.router.add_route("*", r"/{path:[\s\S]*}", unrouted, expect_handler=expect_continue)  # [\s\S]: . skips "\n"
    if config.metrics.listen:
        app.cleanup_ctx.append(_metrics_listener)
    return app


def approval_origins(config: Config) -> set[str]:
    """The gateways whose approval pages the dashboard leads an operator to (mapi_pwd accounts')."""
    return {str(URL(account.gateway_url).origin()) for account in config.alipay.accounts.values()
            if account.approved_by_operator}


async def _metrics_listener(app: web.Application) -> AsyncIterator[None]:
    """`metrics.listen`: a second site in this process serving only /metrics, without the admin token (an
    address only the scraper reaches, as exporters conventionally use)."""
    address = app[CONFIG].metrics.address
    assert address is not None  # only installed when metrics.listen is set
    metrics_app = web.Application()
    metrics_app[ENGINE] = app[ENGINE]
    metrics_app.router.add_get("/metrics", admin.metrics, expect_handler=expect_continue)
    metrics_app.router.add_route("*", r"/{path:[\s\S]*}", unrouted, expect_handler=expect_continue)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, *address).start()
        log.info("/metrics served on http://%s:%d/metrics", *address)
        yield
    finally:
        await runner.cleanup()


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=client_timeout(app[CONFIG])) as session:
        app[HTTP] = session
        yield


def _engine(
    clock: Callable[[], float], run_engine: bool, engine_process: EngineProcess | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config, session, pm = app[CONFIG], app[HTTP], app[PLUGIN_MANAGER]
        store = store_from_url(config.store.url, role="web" if engine_process else "all")
        await store.open()
        try:
            remote = {} if engine_process is None else engine_process.context_fields()
            ctx = engine_context(config, store, session, pm, clock, **remote)
            app[ENGINE] = ctx
            if engine_process is not None:
                await engine_process.start()
            tasks = start_engine(ctx) if run_engine and engine_process is None else []
            try:
                await broadcast(pm, "startup", app=app)
                log.info("started: store %s, Alipay accounts %s, platforms %s, engine %s",
                         config.store.url.split(":", 1)[0],  # the scheme: a PostgreSQL URL may hold a password
                         ", ".join(sorted(ctx.channels)) or "none", ", ".join(sorted(ctx.platforms)) or "none",
                         "in its own process" if engine_process else "running" if run_engine else "off")
                yield
            finally:
                log.info("stopping: engine loops cancelled, in-flight requests drained")
                await stop_engine(tasks)
                if engine_process is not None:
                    await engine_process.stop()
        finally:
            await store.close()
            log.info("stopped")

    return context
