"""The public keys of one Saleor instance, fetched from its JWKS and cached.

Kept for `max_age` seconds, so a key Saleor withdraws stops verifying within that time. A webhook signed by a
`kid` not in the cache has the keys fetched once more (Saleor rotated its key), at most once every `min_refetch`
seconds, so forged `kid`s cannot turn each webhook into a request to the shop. When a due refresh fails, the keys
already known still verify (logged): a webhook Saleor retries after a 5xx could otherwise be answered 5xx until
Saleor gives up, and a refund the merchant then asks for again would be paid twice.
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
    """The keys could not be fetched and none are known: nothing can be verified now."""


class JwksCache:
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
        self._loaded = False  # fetched successfully at least once
        self._fetched_at: float | None = None  # the last attempt, successful or not
        self._fresh_until = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for the operator's views and the tests

    async def key(self, kid: str) -> Any | None:
        """The key named `kid`, or None when the instance does not have it (after a refetch if one was allowed);
        `KeysUnavailable` while no keys were ever fetched."""
        if self._clock() >= self._fresh_until:
            await self._refresh(lambda: self._clock() >= self._fresh_until)
        elif kid not in self._keys and self._may_refetch():
            await self._refresh(lambda: kid not in self._keys and self._may_refetch())
        if not self._loaded:
            raise KeysUnavailable(f"the keys at {self._url} could not be fetched")
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._min_refetch

    async def _refresh(self, still_needed: Callable[[], bool]) -> None:
        """Fetch the keys unless another webhook did it while this one waited for the lock."""
        async with self._lock:
            if not still_needed():
                return
            self._fetched_at = self._clock()
            self.fetches += 1
            try:
                keys = public_keys(await self._fetch())
            except (aiohttp.ClientError, TimeoutError, SignatureError) as exc:
                log.warning("saleor: the keys at %s could not be fetched (%s: %s); %s", self._url,
                            type(exc).__name__, exc, "the known ones still verify" if self._keys else "none known")
                self._fresh_until = self._fetched_at + self._min_refetch  # try again soon, not on every webhook
                return
            self._keys, self._loaded = keys, True
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
