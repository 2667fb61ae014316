"""The public keys of one Saleor instance, fetched from its JWKS and cached.

Kept for `max_age` seconds, so a key Saleor withdraws stops verifying within that time. A webhook signed by a
`kid` not in the cache has the keys fetched once more (Saleor rotated its key): a `kid` still unknown then is
`UnknownKey`. Those refetches happen at most once every `min_refetch` seconds, so made-up `kid`s cannot turn each
webhook into a request to the shop; a webhook that must wait for one is `KeysUnavailable` (answered 503, which
Saleor retries after 10 s), never refused for a key it may well have. When a due refresh fails, the keys already
known still verify (logged): a webhook Saleor retries after a 5xx could otherwise be answered 5xx until Saleor gives
up, and a refund the merchant then asks for again would be paid twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .signature import SignatureError, public_keys

log = logging.getLogger(__name__)
MAX_JWKS_BYTES = 256 * 1024


class KeysUnavailable(Exception):
    """The webhook cannot be checked now: no keys could be fetched, or its `kid` is new and the keys were fetched
    too recently to be fetched again."""


class UnknownKey(Exception):
    """The instance's keys, fetched since this `kid` was first seen (or fresh), have no such key."""


class JwksCache:
    """The keys of one Saleor instance, shared by its webhooks."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        *,
        max_age: float,
        min_refetch: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._url = url
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._failed = True  # the last attempt failed (or none was made): what the keys lack is not known
        self._fetched_at: float | None = None  # the last attempt, successful or not
        self._fresh_until = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for the operator's views and the tests

    async def key(self, kid: str) -> Any:
        """The key named `kid`; `UnknownKey` when the instance does not have it, `KeysUnavailable` when that
        cannot be told now."""
        if kid not in self._keys or self._clock() >= self._fresh_until:
            async with self._lock:  # one fetch at a time: the webhooks waiting for it are checked with its keys
                if self._clock() >= self._fresh_until:
                    await self._refresh()
                elif kid not in self._keys:
                    if not self._may_refetch():
                        raise KeysUnavailable(f"key {kid!r} is new and the keys were fetched less than "
                                              f"{self._min_refetch:g} s ago")
                    await self._refresh()
        if kid in self._keys:
            return self._keys[kid]
        if self._failed:
            raise KeysUnavailable(f"the keys at {self._url} could not be fetched")
        raise UnknownKey(kid)

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._min_refetch

    async def _refresh(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            keys = public_keys(await self._fetch())
        except (aiohttp.ClientError, TimeoutError, SignatureError) as exc:
            log.warning("saleor: the keys at %s could not be fetched (%s: %s); %s", self._url,
                        type(exc).__name__, exc, "the known ones still verify" if self._keys else "none known")
            self._fresh_until = self._fetched_at + self._min_refetch  # try again soon, not on every webhook
            self._failed = True
            return
        self._keys, self._failed = keys, False
        self._fresh_until = self._fetched_at + self._max_age

    async def _fetch(self) -> bytes:
        async with self._http.get(self._url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status,
                                                  message=resp.reason or "")
            body = await resp.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise SignatureError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        return body
