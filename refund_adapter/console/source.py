"""Where the operator's commands read and act, in one place.

Reads go to the store itself, opened read-only (`store_from_url(read_only=True)`): beside a running `serve`
(SQLite in WAL mode lets a `mode=ro` reader in while the writer holds its lock) or without one, and without the
admin token. Actions go to the running service's admin API with `server.admin_token`, so the service stays the
store's one writer and its engine acts at once; when no service answers, a retry is written to the store directly
(on SQLite that takes the store's lock, so it is refused while another process holds it). A re-query needs the
running service: querying Alipay is the engine's job.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import click

from ..config import Config
from ..store import RefundStore, StoreUnavailable, store_from_url

# What can go wrong outside this program: the store's file or server, the service's connection.
_OUTSIDE = (StoreUnavailable, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, RuntimeError)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


class OperatorError(click.ClickException):
    """One line on stderr and exit 1: a bad argument, an unknown id, a store or service out of reach. Whatever
    the message quotes (a server's answer, a driver's error) is folded onto that line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ServiceDown(Exception):
    """Nothing answers at the service's address: `serve` is not running there."""


@asynccontextmanager
async def reading(config: Config) -> AsyncIterator[RefundStore]:
    """The configured store, read-only, for one command."""
    store = store_from_url(config.store.url, read_only=True)
    try:
        await store.open()
    except _OUTSIDE as exc:
        await store.close()
        raise OperatorError(f"cannot read the store: {exc}") from None
    try:
        yield store
    except _OUTSIDE as exc:
        raise OperatorError(f"cannot read the store: {exc}") from None
    finally:
        await store.close()


def service_url(config: Config, url: str | None) -> str:
    """`--url`, or the address `serve` listens on (a wildcard host reached on 127.0.0.1)."""
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if config.server.host in _WILDCARD_HOSTS else config.server.host
    return f"http://{host}:{config.server.port}"


async def call_service(config: Config, url: str, method: str, path: str, body: Any = None) -> Any:
    """The admin API's JSON answer; ServiceDown when nothing listens, OperatorError for any refusal."""
    token = config.server.admin_token
    headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http, http.request(
            method, url + path, json=body, headers=headers
        ) as resp:
            text = await resp.text()
            if resp.status < 300:
                return await resp.json(content_type=None)
    except aiohttp.ClientConnectorError as exc:
        raise ServiceDown(str(exc)) from None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise OperatorError(f"{method} {url}{path}: {type(exc).__name__}: {exc}") from None
    raise OperatorError(_refusal(resp.status, text, token is not None, f"{method} {url}{path}"))


def _refusal(status: int, text: str, has_token: bool, what: str) -> str:
    """One line saying why the service refused: its problem's detail, or what the status means here."""
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if status in (401, 403):
        return f"{what}: the service refused the token (server.admin_token of this config): {detail or status}"
    if status == 404 and not has_token:
        return f"{what}: 404; the admin API is served only with server.admin_token set"
    return f"{what}: {status} {detail or text.strip()[:200]}"


async def retry_reports(config: Config, url: str, refund_ids: Sequence[int] | None) -> int:
    """Put dead-lettered reports (all, or those of `refund_ids`) back in the outbox; how many went back."""
    body = {"refund_ids": list(refund_ids)} if refund_ids else None
    try:
        answer = await call_service(config, url, "POST", "/-/dead-letters/retry", body)
        return int(answer["requeued"])
    except ServiceDown:
        pass
    store = store_from_url(config.store.url)
    try:
        await store.open()
        return await store.retry_dead_letters(time.time(), refund_ids)
    except _OUTSIDE as exc:
        raise OperatorError(f"no service answers at {url}, and the store cannot be written: {exc}") from None
    finally:
        await store.close()


async def requery_batch(config: Config, url: str, batch_id: int) -> dict[str, Any]:
    """Ask the running service to query Alipay for the batch now; the batch as it answers it (`state`...)."""
    try:
        return await call_service(config, url, "POST", f"/-/batches/{batch_id}/requery")
    except ServiceDown:
        raise OperatorError(f"no service answers at {url}: a re-query needs the running `serve`") from None


async def approval_url(config: Config, url: str, batch_id: int) -> dict[str, Any]:
    """Ask the running service for a fresh link to approve the batch at Alipay (`url`, `batch_no`, `expires_at`):
    the service records that a link left, so the reconciler asks Alipay about it if no notify comes."""
    try:
        return await call_service(config, url, "POST", f"/-/batches/{batch_id}/approve-url")
    except ServiceDown:
        raise OperatorError(f"no service answers at {url}: an approval link needs the running `serve`") from None
