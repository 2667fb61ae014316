"""The MAPI refund *channel* for one Alipay account: `RefundChannel` over `refund_fastpay_by_platform_nopwd`.

It turns the gateway's MAPI answers into the channel-neutral ones of `channels/base.py`: which error codes are
worth a retry, what a `BATCH_NO_FORMAT_ERROR` means a day later, which query answers mean "never received", how
a notify names its batch and carries its results. The engine decides on those alone.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import parse_qsl

import aiohttp
from prometheus_client import Histogram

from ...config import AlipayAccount
from ...models import Batch, DetailResult
from ...money import beijing_now
from ...untrusted import quote
from ..base import (
    FORGED,
    MALFORMED,
    MISMATCH,
    DetailsRefused,
    NotifyKind,
    NotifyReading,
    NotifyRefused,
    OpenedNotify,
    QueryAnswer,
    ReferenceMaker,
    Submitted,
    Verdict,
    check_results,
)
from ..signing import SignatureScheme, load_private_key, load_public_key, make_scheme, verify
from .batch_no import batch_no_date, batch_nos
from .detail_data import RefundDetail, TradeRefund, clean_reason, refused_details
from .errors import error_code
from .gateway import GatewayClient, NotifyVerification, SubmitKind, SubmitOutcome
from .notify import parse_dback_notify, parse_refund_notify, read_notify_id
from .results import ResultItem, encode_result_details
from .wire import AlipayFormatError

T = TypeVar("T")

BATCH_NO_FORMAT_ERROR = "BATCH_NO_FORMAT_ERROR"
NOT_FOUND_CODES = frozenset({"REFUND_NOT_EXIST", "BATCH_NO_NOT_EXIST", "TRADE_NOT_EXISTS"})
# Decoding a form is pure Python, about a second for a megabyte of `a=b&a=b...` or of %-escapes, partly in long
# calls that hold the interpreter even on a thread. A genuine notify has a dozen fields or so, and one of 1000
# details (with its unfreezed details) some 12,000 %-escapes in 170 KB: a body with more fields or escapes than
# these is refused undecoded.
MAX_NOTIFY_FIELDS = 64
MAX_NOTIFY_ESCAPES = 24_000


def scheme_for(account: AlipayAccount) -> SignatureScheme:
    """Our signing scheme for an account: its MD5 key, or our RSA key and Alipay's public key."""
    if account.sign_type == "RSA":
        assert account.private_key_pem is not None and account.alipay_public_key_pem is not None
        return make_scheme(
            "RSA",
            charset=account.input_charset,
            private_key=load_private_key(account.private_key_pem.reveal()),
            peer_public_key=load_public_key(account.alipay_public_key_pem.reveal()),
        )
    assert account.md5_key is not None
    return make_scheme("MD5", charset=account.input_charset, md5_key=account.md5_key.reveal())


def decode_form(body: bytes, charset: str) -> dict[str, str]:
    """A form body decoded in the charset the values were signed in (Alipay sends the request's charset)."""
    return dict(parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True, encoding=charset))


def _field(body: bytes, name: str) -> str:
    """One field of a form body (its last occurrence, as a decoded form's dict holds), found without decoding the
    rest."""
    key = name.encode() + b"="
    at = body.rfind(b"&" + key)
    start = at + 1 + len(key) if at >= 0 else len(key) if body.startswith(key) else -1
    if start < 0:
        return ""
    end = body.find(b"&", start)
    return decode_form(b"v=" + body[start : end if end >= 0 else len(body)], "latin-1")["v"]


def _dated(batch: Batch, now: datetime) -> bool:
    """Whether the batch_no is dated `now`'s Beijing day, so that it may be sent again as it is (a reference that
    is no batch_no cannot be)."""
    try:
        return batch_no_date(batch.reference) == beijing_now(now).date()
    except AlipayFormatError:
        return False


def detail_result(item: ResultItem) -> DetailResult:
    """One MAPI result item as the core's verdict on a detail; the item's own text is kept for the journal."""
    trade = item.trade
    return DetailResult(trade.trade_no, trade.amount, trade.code, encode_result_details([item]))


def _read_refund(batch: Batch, params: Mapping[str, str]) -> NotifyReading | str:
    notify = parse_refund_notify(params)
    results = check_results(batch, [detail_result(item) for item in notify.results])
    if isinstance(results, str):
        return results
    return NotifyReading(notify.notify_id, results, f"{len(results)} results")


def _read_dback(batch: Batch, params: Mapping[str, str]) -> NotifyReading | str:
    notify = parse_dback_notify(params)
    if notify.trade_no not in {d.trade_no for d in batch.details}:
        return f"trade {notify.trade_no} is not in batch {batch.reference}"
    return NotifyReading(notify.notify_id, [], f"trade {notify.trade_no} dback status {notify.status}")


@dataclass(frozen=True)
class MapiNotifyKind:
    """A MAPI notify: the parameter naming its batch, and how its results are read."""

    name: str  # recorded with the notify_id, so a redelivery is recognised
    batch_field: str  # the parameter holding our batch_no
    read: Callable[[Batch, Mapping[str, str]], NotifyReading | str]

    def reference_in(self, body: bytes) -> str:
        return _field(body, self.batch_field)


REFUND = MapiNotifyKind("refund", "batch_no", _read_refund)
DBACK = MapiNotifyKind("dback", "refund_batch_no", _read_dback)  # 充退: money back to the card, or left in balance


def _mapi_kind(kind: NotifyKind) -> MapiNotifyKind:
    if not isinstance(kind, MapiNotifyKind):
        raise TypeError(f"the MAPI channel reads MAPI notifies, not {kind.name}")
    return kind


def verdict(outcome: SubmitOutcome, batch: Batch, today: datetime) -> Submitted:
    """What a MAPI submit answer proves, in the engine's terms: DUPLICATE_BATCH_NO is the batch accepted earlier;
    a refusal whose code is not final is worth the same batch_no again; BATCH_NO_FORMAT_ERROR for a batch_no of
    an earlier (Beijing) day means the batch_no expired."""
    answer = outcome.kind.value
    kind = outcome.kind
    if kind in (SubmitKind.ACCEPTED, SubmitKind.PROCESSING, SubmitKind.DUPLICATE):
        found = Verdict.ACCEPTED
    elif kind is SubmitKind.UNKNOWN:
        found = Verdict.UNKNOWN
    elif outcome.code == BATCH_NO_FORMAT_ERROR and batch_no_date(batch.reference) != beijing_now(today).date():
        found = Verdict.EXPIRED
    elif kind is SubmitKind.DETAIL_REFUSED:
        found = Verdict.DETAIL_REFUSED
    elif not error_code(outcome.code or "UNKNOWN_ERROR").final:
        found = Verdict.RETRY
    else:
        found = Verdict.REJECTED
    return Submitted(found, answer, outcome.code, outcome.detail, outcome.request)


@dataclass
class MapiChannel:
    account: AlipayAccount
    gateway: GatewayClient
    scheme: SignatureScheme
    notify_url: str
    dback_notify_url: str
    latency: Histogram | None = None  # seconds per gateway call, by service (Metrics.gateway_latency)

    @classmethod
    def create(
        cls,
        account: AlipayAccount,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,
        *,
        notify_url: str,
        dback_notify_url: str,
        latency: Histogram | None = None,
    ) -> MapiChannel:
        scheme = scheme_for(account)
        gateway = GatewayClient(
            session,
            gateway_url=account.gateway_url,
            partner=account.partner,
            scheme=scheme,
            charset=account.input_charset,
            timeout=timeout,
        )
        return cls(account, gateway, scheme, notify_url, dback_notify_url, latency)

    async def _timed(self, service: str, call: Awaitable[T]) -> T:
        """`call`'s result, its duration observed under `service` once it answers (a timeout is an answer here:
        the gateway client turns it into UNKNOWN). A call that raises sent nothing, and is not observed."""
        started = time.perf_counter()
        result = await call
        if self.latency is not None:
            self.latency.labels(service).observe(time.perf_counter() - started)
        return result

    def references(self, now: datetime) -> ReferenceMaker:
        """batch_nos of the Beijing day of `now`: yyyyMMdd + a serial derived from the batch's id."""
        return batch_nos(beijing_now(now).date())

    def details(self, batch: Batch) -> list[RefundDetail]:
        """The batch as detail_data lines; reasons are cleaned, never a cause of rejection."""
        charset = self.account.input_charset
        return [
            RefundDetail(TradeRefund(d.trade_no, d.amount, clean_reason(d.reason, charset) or "refund"))
            for d in batch.details
        ]

    async def submit(self, batch: Batch, now: datetime) -> Submitted:
        details = self.details(batch)
        try:
            outcome = await self._timed("submit", self.gateway.submit(
                batch_no=batch.reference,
                refund_date=now,
                details=details,
                notify_url=self.notify_url,
                dback_notify_url=self.dback_notify_url,
                use_freeze_amount=self.account.use_freeze_amount,
            ))
        except AlipayFormatError:  # raised before anything is sent (gateway.submit)
            refused = refused_details(details, self.account.input_charset)
            if not refused:
                raise  # not a detail's fault: the engine's bounded retry, then review
            raise DetailsRefused({batch.details[index].refund_id: str(exc) for index, exc in refused.items()}) from None
        return verdict(outcome, batch, now)

    async def query(self, batch: Batch, now: datetime) -> QueryAnswer:
        """`refund_fastpay_query` by batch_no. "Never received" (REFUND_NOT_EXIST and its kin, or no items) makes
        the batch resendable while its batch_no is still today's in Beijing."""
        outcome = await self._timed("query", self.gateway.query(batch_no=batch.reference))
        response = outcome.response
        if response is None:
            return QueryAnswer(unresolved=f"query unanswered: {outcome.detail}")
        if not response.is_success or not response.items:
            not_found = response.error_code in NOT_FOUND_CODES or (response.is_success and not response.items)
            today = _dated(batch, now)
            return QueryAnswer(unresolved=f"query answered {response.error_code or 'no items'}",
                               resendable=not_found and today, lapsed=not_found and not today)
        ours = [detail_result(item.result) for item in response.items if item.batch_no == batch.reference]
        results = check_results(batch, ours)
        if isinstance(results, str):
            return QueryAnswer(mismatch=results)
        return QueryAnswer(results=tuple(results))

    def open_notify(self, kind: NotifyKind, batch: Batch, body: bytes) -> OpenedNotify | NotifyRefused:
        reference = batch.reference
        if body.count(b"&") >= MAX_NOTIFY_FIELDS or body.count(b"%") > MAX_NOTIFY_ESCAPES:
            return NotifyRefused(
                f"batch {reference}: more than {MAX_NOTIFY_FIELDS} fields or {MAX_NOTIFY_ESCAPES} %-escapes", MALFORMED
            )
        params = decode_form(body, self.account.input_charset)
        if not verify(params, self.scheme):
            return NotifyRefused(f"batch {reference}: bad signature", FORGED)
        named = params.get(_mapi_kind(kind).batch_field, "")
        if named != reference:  # what was signed names another batch than the one looked up
            return NotifyRefused(f"batch {reference}: the decoded notify names batch {quote(named)}", MISMATCH)
        try:  # checked before it travels to notify_verify: a signed notify may still carry 8 KB of anything there
            notify_id = read_notify_id(params)
        except AlipayFormatError as exc:
            return NotifyRefused(f"batch {reference}: {exc}", MALFORMED)
        return OpenedNotify(notify_id, params)

    async def confirm_notify(self, notify: OpenedNotify) -> bool:
        verified = await self._timed("notify_verify", self.gateway.notify_verify(notify.message_id))
        return verified is NotifyVerification.TRUE

    def read_notify(self, kind: NotifyKind, batch: Batch, notify: OpenedNotify) -> NotifyReading | NotifyRefused:
        mapi_kind = _mapi_kind(kind)
        try:
            reading = mapi_kind.read(batch, notify.fields)
        except AlipayFormatError as exc:
            return NotifyRefused(f"batch {batch.reference}: malformed {kind.name} notify: {exc}", MALFORMED)
        if isinstance(reading, str):
            return NotifyRefused(f"{kind.name} notify: {reading}", MISMATCH)
        return reading
