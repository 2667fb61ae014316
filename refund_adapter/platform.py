"""What a platform plugin implements: the `PlatformAdapter` the core calls for one platform, and the helpers
plugins share (`PluginData`, `retry_after_seconds`, webhook body helpers); signatures are in `signatures`.

Plugins contribute adapters through the `register_platforms` hook; the core then awaits the adapter of a
webhook's platform directly (pluggy is for discovery and broadcasts, not for routing one refund).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, Protocol, runtime_checkable

from .models import DeliveryResult, RefundOutcome, RefundRequest


@dataclass(frozen=True)
class InboundWebhook:
    """The raw HTTP request as a plugin needs it: signatures are checked over `body`, the exact bytes received."""

    platform: str
    subpath: str  # what follows /webhooks/{platform}/, "" when nothing does
    headers: Mapping[str, str]  # case-insensitive
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class WebhookAccepted:
    """A verified webhook: the refund requests it carries (none for a ping or a restock-only refund).

    `reconcile_soon` asks the core to call the adapter's `reconcile` now rather than at the next tick, for a
    webhook whose refund the adapter must first complete from the platform's API.
    """

    requests: Sequence[RefundRequest] = ()
    reconcile_soon: bool = False
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


class WebhookRejected(Exception):
    """A webhook we refuse: answered as an RFC 9457 problem with a stable `type`, nothing stored."""

    def __init__(self, status: int, type_: str, detail: str) -> None:
        super().__init__(f"{type_}: {detail}")
        self.status = status
        self.type = type_
        self.detail = detail


@dataclass(frozen=True)
class ShopInfo:
    """One configured shop of a platform, as the operator's views show it."""

    id: str
    alipay_account: str
    extra: Mapping[str, str] = field(default_factory=dict)


class _DataStore(Protocol):
    async def plugin_data_get(self, plugin: str, key: str) -> str | None: ...

    async def plugin_data_put(self, plugin: str, items: Mapping[str, str], now: float) -> None: ...

    async def plugin_data_items(self, plugin: str, prefix: str) -> dict[str, str]: ...

    async def plugin_data_delete(self, plugin: str, keys: Sequence[str]) -> None: ...


class PluginData:
    """A plugin's own small durable data (a payment id -> trade number map, a poll cursor), kept in the
    refund store under the plugin's name so it is as durable as the refunds and works on every backend."""

    def __init__(self, store: _DataStore, plugin: str, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._plugin = plugin
        self._clock = clock

    async def get(self, key: str) -> str | None:
        return await self._store.plugin_data_get(self._plugin, key)

    async def put(self, key: str, value: str) -> None:
        await self.put_many({key: value})

    async def put_many(self, items: Mapping[str, str]) -> None:
        """Insert or replace all of `items` in one transaction."""
        await self._store.plugin_data_put(self._plugin, items, self._clock())

    async def items(self, prefix: str = "") -> dict[str, str]:
        """Every key starting with `prefix`, with its value: one key per entry makes a queue safe to share."""
        return await self._store.plugin_data_items(self._plugin, prefix)

    async def delete(self, keys: Sequence[str]) -> None:
        await self._store.plugin_data_delete(self._plugin, keys)


@runtime_checkable
class PlatformAdapter(Protocol):
    """One platform: turn its webhooks into refund requests and tell it the final results."""

    name: str

    async def receive(self, webhook: InboundWebhook) -> WebhookAccepted:
        """Verify the webhook's signature over the raw body, then map it to canonical refund requests.

        Raise `WebhookRejected` for a forged, malformed or unknown-shop webhook. Must not call slow APIs
        unless the platform gives nothing else (the answer is due within the platform's timeout).
        """
        ...

    async def report(self, outcome: RefundOutcome) -> DeliveryResult:
        """Tell the platform a refund's final result. Called again (same outcome) until DELIVERED or DEAD.

        Also for a refund rejected before reaching Alipay (`code` an `Unpayable` code or EXCEEDS_PAID_AMOUNT, no
        batch_no): the platform learns it was not paid and why, as it would learn of Alipay's refusal."""
        ...

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        """Refund requests the platform has that webhooks may have missed (may return ones already known).

        The core calls it every `platform_poll.interval_seconds`; poll your API at your own pace. `since` is when
        the last call that returned normally started, None on the first call after start: it moves forward only
        after everything that call returned was stored (or refused by the core's guards).
        """
        ...

    def shops(self) -> Sequence[ShopInfo]:
        """The shops this adapter serves."""
        ...


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable.

    Shared so that every plugin's `DeliveryResult.retry` honours a platform's Retry-After the same way.
    """
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def alipay_code_meaning(code: str) -> str | None:
    """What Alipay documents a result code to mean (in Alipay's Chinese), or None for a code it does not list (the
    core's own, such as EXCEEDS_PAID_AMOUNT): for the message a plugin writes back to the merchant."""
    from .channels.mapi.errors import ERROR_CODES  # here: importing the plugin API should not load the MAPI channel

    known = ERROR_CODES.get(code)
    return None if known is None else known.meaning


def reject(status: int, type_: str, detail: str) -> NoReturn:
    """Raise `WebhookRejected`: for parsers that check a body field by field."""
    raise WebhookRejected(status, type_, detail)


def json_object(body: bytes, *, allow_nan: bool = False) -> dict[str, Any]:
    """A webhook's body as a JSON object, or 400 `malformed-body`.

    NaN and ±Infinity (which are not JSON) are refused unless `allow_nan`.
    """
    try:
        text = body.decode(json.detect_encoding(body))  # strict: UTF-8 bytes of a lone surrogate are not text
        document = (_LENIENT if allow_nan else _STRICT).decode(text)
    except ValueError as exc:  # also UnicodeDecodeError
        raise WebhookRejected(400, "malformed-body", f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise WebhookRejected(400, "malformed-body", "the body's JSON is nested too deeply") from exc
    if not isinstance(document, dict):
        reject(400, "malformed-body", "the body must be a JSON object")
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(document):
        reject(400, "malformed-body", "a JSON string holds a lone surrogate (\\ud800-\\udfff), which is not text")
    return document


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a `\ud800`-style escape: a pair, or a lone surrogate


def _has_lone_surrogate(document: Any) -> bool:
    """Whether a string anywhere in `document` (keys included) cannot be encoded: it would fail in the store.
    Iterative, so a document nested as deep as the decoder allows cannot exhaust the stack here."""
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending += node.keys()
            pending += node.values()
        elif isinstance(node, list):
            pending += node
        elif isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError:
                return True
    return False


def non_empty_string(document: Mapping[str, Any], name: str) -> str:
    """The body's field `name`, or 400 `malformed-body` unless it is a non-empty string."""
    value = document.get(name)
    if not isinstance(value, str) or not value:
        reject(400, "malformed-body", f"{name} must be a non-empty string")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads with any keyword argument builds a new decoder on every call.
_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)
_LENIENT = json.JSONDecoder()
