"""The sandbox's own JSON API (`/sandbox/...`): seed and read trades, read what was received, set faults,
release held notifies. It is the same whichever faces the sandbox serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .ledger import Trade, parse_trade_seeds
from .notifier import deliver_in_turn
from .state import STATE_KEY, SandboxState

PROBLEM_TYPE = "urn:refund-adapter:sandbox:invalid-request"


def _problem(status: int, title: str, detail: str) -> web.Response:
    """RFC 9457 problem details with a stable type."""
    body = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc


def _trades_json(state: SandboxState, trades: Iterable[Trade]) -> list[dict[str, Any]]:
    return [trade.to_json(state.ledger.balance(trade.seller_id)) for trade in trades]


async def get_trades(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(_trades_json(state, state.ledger.trades.values()))


async def post_trades(request: web.Request) -> web.Response:
    """Seed one trade or a list; all are validated before any is stored."""
    state = request.app[STATE_KEY]
    try:
        seeds = parse_trade_seeds(await _json_body(request))
    except ValueError as exc:
        return _problem(400, "invalid trade", str(exc))
    return web.json_response(_trades_json(state, [state.ledger.seed(seed) for seed in seeds]), status=201)


async def get_batches(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response([batch.to_json() for batch in state.batches.values()])


async def release_notifies(request: web.Request) -> web.Response:
    """Deliver every held notification, in the order they were made or `{"order": "reverse"}`."""
    state = request.app[STATE_KEY]
    try:
        spec = await _json_body(request) if request.can_read_body else {}
        order = spec.get("order", "made") if isinstance(spec, dict) else None
        if order not in ("made", "reverse"):
            raise ValueError('expected {"order": "made"} or {"order": "reverse"}')
    except ValueError as exc:
        return _problem(400, "invalid release", str(exc))
    released, state.held = state.held, []
    if order == "reverse":
        released.reverse()
    state.spawn(deliver_in_turn(state, released))
    return web.json_response({"released": [notification.notify_id for notification, _ in released]})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].faults.snapshot())


async def post_faults(request: web.Request) -> web.Response:
    faults = request.app[STATE_KEY].faults
    try:
        spec = await _json_body(request)
        if not isinstance(spec, dict):
            raise ValueError("expected a JSON object of fault switches")
        faults.update(spec)
    except ValueError as exc:
        return _problem(400, "invalid faults", str(exc))
    return web.json_response(faults.snapshot())


def add_routes(app: web.Application) -> None:
    """Mount the admin API on the sandbox's app."""
    app.router.add_get("/sandbox/trades", get_trades)
    app.router.add_post("/sandbox/trades", post_trades)
    app.router.add_get("/sandbox/batches", get_batches)
    app.router.add_get("/sandbox/faults", get_faults)
    app.router.add_post("/sandbox/faults", post_faults)
    app.router.add_post("/sandbox/notifies/release", release_notifies)
