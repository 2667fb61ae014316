"""The HTTP client of Alipay's open-platform gateway for one app: `alipay.trade.refund` and its query.

One shared `aiohttp.ClientSession`, an explicit timeout per call. Whatever it cannot prove is UNKNOWN, never a
failure: a timeout, a transport error or a 5xx may hide a refund that was made, which the query settles with
the same out_request_no. HTTP 429 is a rate limit, like the gateway's 40005.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp

from .messages import METHOD_REFUND, METHOD_REFUND_QUERY, App, query_biz, refund_biz, signed_request
from .outcomes import Answer, QueryKind, RefundKind, query_answer, refund_answer
from .signing import CHARSET, Signer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    """One call's answer and what was sent, for the journal (never `sign`, nor `app_auth_token`)."""

    answer: Answer
    request: Mapping[str, str] = field(default_factory=dict)


class OpenApiClient:
    """Talks to one gateway as one app; never creates a session of its own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        gateway_url: str,
        app: App,
        signer: Signer,
        timeout: aiohttp.ClientTimeout,
        now: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._url = gateway_url
        self._app = app
        self._signer = signer
        self._timeout = timeout
        self._now = now

    async def refund(self, trade_no: str, amount: Decimal, out_request_no: str, reason: str) -> Sent:
        """One refund; sending it again with the same out_request_no is always safe."""
        biz = refund_biz(trade_no, amount, out_request_no, reason)
        params = signed_request(self._app, METHOD_REFUND, biz, self._now(), self._signer)
        body = await self._post(params)
        answer = (refund_answer(body, self._signer, trade_no) if isinstance(body, bytes)
                  else _no_answer(body, RefundKind))
        log.info("alipay openapi refund out_request_no=%s -> %s %s", out_request_no, answer.kind.value,
                 answer.code or "")
        return Sent(answer, _journal(params))

    async def query(self, trade_no: str, out_request_no: str) -> Sent:
        biz = query_biz(trade_no, out_request_no)
        params = signed_request(self._app, METHOD_REFUND_QUERY, biz, self._now(), self._signer)
        body = await self._post(params)
        answer = (query_answer(body, self._signer, trade_no, out_request_no) if isinstance(body, bytes)
                  else _no_answer(body, QueryKind))
        log.info("alipay openapi refund query out_request_no=%s -> %s", out_request_no, answer.kind.value)
        return Sent(answer, _journal(params))

    async def _post(self, params: Mapping[str, str]) -> bytes | str:
        """The body of a 200 answer, or why there is none (`_LIMITED` for HTTP 429)."""
        data = urlencode(params, encoding=CHARSET).encode("ascii")
        headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={CHARSET}"}
        try:
            async with self._session.post(self._url, data=data, headers=headers, timeout=self._timeout,
                                          allow_redirects=False) as resp:
                body = await resp.read()
        except TimeoutError:
            return "timed out"
        except aiohttp.ClientError as exc:
            return f"transport error: {type(exc).__name__}: {exc}"
        if resp.status == 429:
            return _LIMITED
        return body if resp.status == 200 else f"HTTP {resp.status}"


_LIMITED = "HTTP 429"


def _no_answer(why: str, kinds: type[RefundKind] | type[QueryKind]) -> Answer:
    """No body to read: rate limited (HTTP 429), or unknown (timeout, transport error, another status)."""
    return Answer(kinds.RATE_LIMITED if why == _LIMITED else kinds.UNKNOWN, detail=why)


def _journal(params: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if key not in ("sign", "app_auth_token")}
