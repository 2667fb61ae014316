"""The HTTP client of Alipay's MAPI gateway: submit a refund batch, verify a notify_id, query refunds.

It runs over one shared `aiohttp.ClientSession` with an explicit timeout per call. Every outcome it cannot
prove is reported as UNKNOWN, never as a rejection: a timeout or a 5xx may hide an accepted batch, which is
resolved later by the notify or the query service with the same `batch_no` (§3.1, §6 of the reference).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from refund_adapter.channels.mapi.ack import Ack, parse_ack
from refund_adapter.channels.mapi.detail_data import RefundDetail, batch_num, encode_detail_data
from refund_adapter.channels.mapi.errors import error_code
from refund_adapter.channels.mapi.query import QueryResponse, parse_query_response
from refund_adapter.channels.mapi.wire import (
    SERVICE_NOTIFY_VERIFY,
    SERVICE_QUERY,
    SERVICE_REFUND,
    AlipayFormatError,
    format_alipay_time,
)
from refund_adapter.channels.signing import SignatureScheme, signed

log = logging.getLogger(__name__)

DUPLICATE_BATCH_NO = "DUPLICATE_BATCH_NO"


class SubmitKind(enum.Enum):
    """What the synchronous answer to a refund batch proves."""

    ACCEPTED = "accepted"  # T: queued; the notify carries the result
    PROCESSING = "processing"  # P: accepted, not final
    DUPLICATE = "duplicate"  # F + DUPLICATE_BATCH_NO: this batch_no was accepted earlier
    REJECTED = "rejected"  # F + another code: nothing was queued
    DETAIL_REFUSED = "detail_refused"  # F + a code one detail may cause: nothing was queued; which one is not said
    UNKNOWN = "unknown"  # no usable answer: resolve by notify or query, never by a new batch_no


@dataclass(frozen=True)
class SubmitOutcome:
    """The classified answer to `submit`; `code` is Alipay's error code, `detail` a human explanation."""

    kind: SubmitKind
    code: str | None = None
    detail: str = ""
    # What was sent, for the batch's journal: the parameters before signing (so never `sign`, nor a key).
    request: Mapping[str, str] = field(default_factory=dict, compare=False)


class NotifyVerification(enum.Enum):
    """Alipay's word on a notify_id: `true`, `false`, `invalid` (bad parameters), or no usable answer."""

    TRUE = "true"
    FALSE = "false"
    INVALID = "invalid"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class QueryOutcome:
    """A parsed `refund_fastpay_query` answer, or `response=None` when none could be had (see `detail`)."""

    response: QueryResponse | None
    detail: str = ""


class _NoAnswer(Exception):
    """The gateway gave no usable HTTP answer (transport error, timeout, non-200)."""


class GatewayClient:
    """Talks to one MAPI gateway as one partner; never creates a session of its own."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        gateway_url: str,
        partner: str,
        scheme: SignatureScheme,
        charset: str = "utf-8",
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        scheme_charset = getattr(scheme, "charset", charset)
        if scheme_charset.lower() != charset.lower():
            raise ValueError(f"the scheme signs in {scheme_charset!r} but requests are sent in {charset!r}")
        self._session = session
        self._url = URL(gateway_url)
        self._partner = partner
        self._scheme = scheme
        self._charset = charset
        self._timeout = timeout

    async def submit(
        self,
        *,
        batch_no: str,
        refund_date: datetime,
        details: Sequence[RefundDetail],
        notify_url: str | None,
        dback_notify_url: str | None = None,
        use_freeze_amount: bool = False,
    ) -> SubmitOutcome:
        """Send one `refund_fastpay_by_platform_nopwd` batch; resending the same batch_no is always safe.

        Details that break a protocol rule raise AlipayFormatError before anything is sent.
        """
        params = {
            "service": SERVICE_REFUND,
            "batch_no": batch_no,
            "refund_date": format_alipay_time(refund_date),
            "batch_num": batch_num(details),
            "detail_data": encode_detail_data(details, self._charset),
            "notify_url": notify_url or "",
            "dback_notify_url": dback_notify_url or "",
            "use_freeze_amount": "Y" if use_freeze_amount else "",
        }
        try:
            body = await self._post_signed(params)
            ack = parse_ack(body)
        except _NoAnswer as exc:
            outcome = SubmitOutcome(SubmitKind.UNKNOWN, detail=str(exc))
        except AlipayFormatError as exc:
            outcome = SubmitOutcome(SubmitKind.UNKNOWN, detail=f"unparsable answer: {exc}")
        else:
            outcome = _classify_ack(ack)
        outcome = replace(outcome, request={**params, "partner": self._partner, "_input_charset": self._charset})
        log.info("alipay submit batch_no=%s -> %s %s", batch_no, outcome.kind.value, outcome.code or "")
        return outcome

    async def notify_verify(self, notify_id: str) -> NotifyVerification:
        """Ask the gateway whether it issued `notify_id` for our partner (unsigned GET, §4.5)."""
        query = {"service": SERVICE_NOTIFY_VERIFY, "partner": self._partner, "notify_id": notify_id}
        try:
            body = await self._request("GET", self._url.update_query(query))
        except _NoAnswer as exc:
            log.warning("alipay notify_verify notify_id=%s: no answer (%s)", notify_id, exc)
            return NotifyVerification.UNKNOWN
        text = body.decode("ascii", "replace").strip()
        try:
            return NotifyVerification(text)
        except ValueError:
            log.warning("alipay notify_verify notify_id=%s: unexpected body %r", notify_id, text[:80])
            return NotifyVerification.UNKNOWN

    async def query(self, *, batch_no: str | None = None, trade_no: str | None = None) -> QueryOutcome:
        """`refund_fastpay_query` by batch_no and/or trade_no (signed); plain-text answer of §6."""
        if not (batch_no or trade_no):
            raise ValueError("query needs a batch_no or a trade_no")
        params = {"service": SERVICE_QUERY, "batch_no": batch_no or "", "trade_no": trade_no or ""}
        try:
            body = await self._post_signed(params)
            response = parse_query_response(body, self._charset)
        except _NoAnswer as exc:
            return QueryOutcome(None, str(exc))
        except AlipayFormatError as exc:
            return QueryOutcome(None, f"unparsable answer: {exc}")
        log.info("alipay query batch_no=%s trade_no=%s -> is_success=%s", batch_no, trade_no, response.is_success)
        return QueryOutcome(response, "" if response.is_success else response.error_code or "")

    async def _post_signed(self, params: Mapping[str, str]) -> bytes:
        """POST the signed form, encoded in our charset, to `gateway?_input_charset=<charset>`."""
        wire = signed({**params, "partner": self._partner, "_input_charset": self._charset}, self._scheme)
        body = urlencode({key: value for key, value in wire.items() if value}, encoding=self._charset)
        url = self._url.update_query(_input_charset=self._charset)
        headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={self._charset}"}
        return await self._request("POST", url, data=body.encode("ascii"), headers=headers)

    async def _request(
        self, method: str, url: URL, *, data: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> bytes:
        """The body of a 200 answer; anything else raises `_NoAnswer` naming what happened."""
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await resp.read()
        except TimeoutError as exc:
            raise _NoAnswer("timed out") from exc
        except aiohttp.ClientError as exc:
            raise _NoAnswer(f"transport error: {type(exc).__name__}: {exc}") from exc
        if resp.status != 200:
            raise _NoAnswer(f"HTTP {resp.status}")
        return body


def _classify_ack(ack: Ack) -> SubmitOutcome:
    """Map the sync XML answer (§3.1) to what it proves about the batch (parse_ack: F always has a code)."""
    if ack.status == "T":
        return SubmitOutcome(SubmitKind.ACCEPTED)
    if ack.status == "P":
        return SubmitOutcome(SubmitKind.PROCESSING)
    if ack.error == DUPLICATE_BATCH_NO:
        return SubmitOutcome(SubmitKind.DUPLICATE, ack.error, "batch_no already accepted earlier")
    code = error_code(ack.error or "")
    kind = SubmitKind.DETAIL_REFUSED if code.one_detail_may_cause else SubmitKind.REJECTED
    return SubmitOutcome(kind, ack.error, code.meaning)
