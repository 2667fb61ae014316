"""The sandbox's MAPI face: `refund_fastpay_by_platform_nopwd`, its query and `notify_verify` (§8).

It checks requests the way the real gateway is documented to (each failure answers `F` with its code), refunds
each detail from the shared ledger asynchronously, and hands the signed notifies to the notify sender.
Decisions where the reference leaves room (all (I) in the reference):
* `hang_seconds` delays the answer AFTER the request was processed: the batch is accepted, the client times
  out; that is the case an exactly-once client must survive. `close_after_processing` is its abrupt form: the
  connection is closed with no answer at all.
* `notify_before_ack` evaluates the batch and delivers its notifies (first attempt) before the synchronous
  answer leaves, so the merchant hears the result before it has recorded that the batch was sent.
* A query for a batch whose details are not evaluated yet answers `is_success=T` without those details;
  `REFUND_NOT_EXIST` means the batch (or trade) was never received.
* Royalty and sub-trade parts of a detail are echoed with the code of their trade part.
* With `use_freeze_amount=Y` the notify carries `unfreezed_details`, one record per successful detail with
  made-up order numbers and status and code `SUCCESS` (the real alphabets are unknown).
* `refund_date` is "the current time of the request" (§1.3): more than `REFUND_DATE_TOLERANCE` away from the
  gateway's clock answers `REFUND_DATE_ERROR`. Alipay's tolerance is unknown; an hour catches a time written in
  another zone (UTC is 8 hours off).
* A `batch_no` sent again is answered `DUPLICATE_BATCH_NO` and noted in the batch's `resends`, with whether
  its `detail_data` was the same, so a client that reuses a batch_no for other refunds is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote_from_bytes

from aiohttp import web

from refund_adapter.channels.mapi.ack import render_ack
from refund_adapter.channels.mapi.batch_no import validate_batch_no
from refund_adapter.channels.mapi.detail_data import MAX_DETAILS, RefundDetail, decode_detail_data
from refund_adapter.channels.mapi.notify import NOTIFY_TYPE_REFUND
from refund_adapter.channels.mapi.query import QueryResponse, render_query_response
from refund_adapter.channels.mapi.results import (
    QueryItem,
    ResultItem,
    RoyaltyResult,
    SubTradeResult,
    TradeResult,
    UnfreezedDetail,
    encode_result_details,
    encode_unfreezed_details,
)
from refund_adapter.channels.mapi.wire import (
    CHARSETS,
    SERVICE_NOTIFY_VERIFY,
    SERVICE_QUERY,
    SERVICE_REFUND,
    AlipayFormatError,
    format_alipay_time,
    parse_alipay_time,
)
from refund_adapter.channels.signing import MD5Scheme, RSAScheme, SignatureScheme, verify
from refund_adapter.money import beijing_now

from . import notifier
from .ledger import SUCCESS, money_json
from .notifier import Notification
from .state import STATE_KEY, SandboxState

log = logging.getLogger(__name__)

GATEWAY_PATH = "/gateway.do"
DEFAULT_CHARSET = "gbk"  # what the gateway assumes when `_input_charset` is absent (§8)
REFUND_DATE_TOLERANCE = timedelta(hours=1)
DBACK_RESULTS = {"S": "S", "F": "F", "I": "P"}  # dback notify status -> result_details `dback_res`
REFUND_REQUIRED = ("batch_no", "refund_date", "batch_num", "detail_data")
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


class SyncError(Exception):
    """A synchronous check failed: the gateway answers `F` with `code`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


@dataclass
class DetailRecord:
    """A received detail and, once evaluated, its result."""

    detail: RefundDetail
    result: ResultItem | None = None

    def to_json(self) -> dict[str, Any]:
        trade = self.detail.trade
        result = self.result.trade if self.result else None
        return {
            "trade_no": trade.trade_no,
            "amount": money_json(trade.amount),
            "reason": trade.reason,
            "code": result.code if result else None,
            "dback_result": result.dback_result if result else None,
        }


@dataclass
class ReceivedBatch:
    """A batch accepted by the gateway (its view of what it received, not `models.Batch`)."""

    batch_no: str
    partner: str
    charset: str
    scheme: SignatureScheme  # verified the request; signs the notifies
    notify_url: str | None
    dback_notify_url: str | None
    use_freeze_amount: bool
    details: list[DetailRecord]
    detail_data: str  # as received, to compare with a resend of the same batch_no
    refund_date: str  # as received
    received_at: datetime
    notifications: list[Notification] = field(default_factory=list)
    resends: list[dict[str, Any]] = field(default_factory=list)  # each later request with this batch_no

    @property
    def evaluated(self) -> bool:
        return all(record.result is not None for record in self.details)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_no": self.batch_no,
            "received_at": self.received_at.isoformat(),
            "refund_date": self.refund_date,
            "charset": self.charset,
            "sign_type": self.scheme.sign_type,
            "notify_url": self.notify_url,
            "dback_notify_url": self.dback_notify_url,
            "use_freeze_amount": self.use_freeze_amount,
            "evaluated": self.evaluated,
            "details": [record.to_json() for record in self.details],
            "notifications": [n.to_json() for n in self.notifications],
            "resends": self.resends,
        }


# --- the gateway ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRequest:
    """The decoded parameters of one gateway request and the charset they were decoded with."""

    params: dict[str, str]
    charset: str
    charset_supported: bool


def _ascii_form(raw: bytes) -> str:
    """Percent-escape any non-ASCII byte, so parse_qsl can decode every value with the declared charset."""
    return quote_from_bytes(raw, safe=_PRINTABLE_ASCII)


async def read_request(request: web.Request) -> GatewayRequest:
    """Merge the URL query and the form body, decoded with `_input_charset` (GBK when absent)."""
    sources = [request.rel_url.raw_query_string, _ascii_form(await request.read())]
    probe: dict[str, str] = {}
    for text in sources:
        probe.update(parse_qsl(text, encoding="latin-1"))
    charset = (probe.get("_input_charset") or DEFAULT_CHARSET).lower()
    supported = charset in CHARSETS
    params: dict[str, str] = {}
    for text in sources:
        params.update(parse_qsl(text, keep_blank_values=True, encoding=charset if supported else "latin-1"))
    return GatewayRequest(params, charset, supported)


def _ack(status: str, error: str | None = None) -> web.Response:
    return web.Response(body=render_ack(status, error), headers={"Content-Type": "text/xml; charset=GBK"})


def _scheme_for(state: SandboxState, sign_type: str, charset: str) -> SignatureScheme | None:
    """The configured scheme for `sign_type` in `charset`; None when this partner cannot use it."""
    config = state.config
    if sign_type == "MD5" and config.md5_key:
        return MD5Scheme(config.md5_key, charset)
    if sign_type == "RSA" and config.alipay_private_key and config.merchant_public_key:
        return RSAScheme(config.alipay_private_key, config.merchant_public_key, charset)
    return None


def check_signed(state: SandboxState, req: GatewayRequest, *, refund: bool) -> SignatureScheme:
    """Partner, permission, charset, sign_type and signature, in the documented order."""
    params = req.params
    if params.get("partner") != state.config.partner:
        raise SyncError("ILLEGAL_PARTNER")
    if refund and not state.config.nopwd_permission:
        raise SyncError("ILLEGAL_PARTNER_EXTERFACE")
    if not req.charset_supported:
        raise SyncError("ILLEGAL_CHARSET", req.charset)
    scheme = _scheme_for(state, params.get("sign_type", ""), req.charset)
    if scheme is None:
        raise SyncError("ILLEGAL_SIGN_TYPE")
    if not verify(params, scheme):
        raise SyncError("ILLEGAL_SIGN")
    return scheme


def received_batch(state: SandboxState, req: GatewayRequest, scheme: SignatureScheme, *,
                   nopwd: bool = True) -> ReceivedBatch:
    """Every business check of a refund request (§8 steps 4-7); the batch to persist when all pass. The password
    refund (`nopwd=False`, the `pwd` face) has no `dback_notify_url`, `use_freeze_amount` nor `return_type`."""
    params = req.params
    missing = [name for name in REFUND_REQUIRED if not params.get(name)]
    if missing:
        raise SyncError("ILLEGAL_ARGUMENT", f"missing {', '.join(missing)}")
    freeze, answer = params.get("use_freeze_amount", ""), params.get("return_type", "")
    if nopwd and (freeze not in ("", "Y", "N") or answer not in ("", "xml")):
        raise SyncError("ILLEGAL_ARGUMENT", "use_freeze_amount or return_type")
    batch_no, now = params["batch_no"], state.now()
    with codec_errors():
        validate_batch_no(batch_no, today=beijing_now(now).date())
    if batch_no in state.batches:
        first = state.batches[batch_no]
        first.resends.append({"at": now.isoformat(), "same_details": params["detail_data"] == first.detail_data})
        raise SyncError("DUPLICATE_BATCH_NO")
    with codec_errors():
        refund_date = parse_alipay_time(params["refund_date"])
    if nopwd and abs(refund_date - now) > REFUND_DATE_TOLERANCE:
        raise SyncError("REFUND_DATE_ERROR", f"{params['refund_date']} is not now ({format_alipay_time(now)})")
    if not nopwd and refund_date.date() != beijing_now(now).date():  # a password link is good on its day
        raise SyncError("REFUND_DATE_ERROR", f"{params['refund_date']} is not today ({format_alipay_time(now)})")
    count_text, detail_data = params["batch_num"], params["detail_data"]
    if not (count_text.isascii() and count_text.isdigit()) or int(count_text) == 0:
        raise SyncError("BATCH_NUM_ERROR")
    if int(count_text) > MAX_DETAILS:
        raise SyncError("BATCH_NUM_EXCEED_LIMIT")
    if int(count_text) != detail_data.count("#") + 1:
        raise SyncError("BATCH_NUM_NOT_EQUAL_TOTAL")
    with codec_errors():
        details = decode_detail_data(detail_data, req.charset)
    refused = state.faults.take("refuse_trade")
    if refused and any(detail.trade.trade_no == refused for detail in details):
        raise SyncError("DETAIL_DATA_FORMAT_ERROR", f"trade {refused} (fault refuse_trade)")
    return ReceivedBatch(
        batch_no=batch_no,
        partner=params["partner"],
        charset=req.charset,
        scheme=scheme,
        notify_url=params.get("notify_url") or None,
        dback_notify_url=(params.get("dback_notify_url") or None) if nopwd else None,
        use_freeze_amount=nopwd and freeze == "Y",
        details=[DetailRecord(detail) for detail in details],
        detail_data=detail_data,
        refund_date=params["refund_date"],
        received_at=now,
    )


@contextlib.contextmanager
def codec_errors() -> Iterator[None]:
    """A codec refusal answers the Alipay code the codec attached to the broken rule."""
    try:
        yield
    except AlipayFormatError as exc:
        raise SyncError(exc.code, str(exc)) from exc


async def _service_refund(state: SandboxState, req: GatewayRequest) -> web.Response:
    try:
        scheme = check_signed(state, req, refund=True)
        batch = received_batch(state, req, scheme)
    except SyncError as exc:
        log.info("sandbox refund refused: %s", exc)
        return _ack("F", exc.code)
    state.batches[batch.batch_no] = batch
    if state.faults.take("notify_before_ack"):
        await process_batch(state, batch)
        await asyncio.gather(*(notification.first_attempt.wait() for notification in batch.notifications))
    else:
        state.spawn(process_batch(state, batch))
    log.info("sandbox accepted batch_no=%s with %d details", batch.batch_no, len(batch.details))
    return _ack("P" if state.faults.take("answer_processing") else "T")


async def _service_notify_verify(state: SandboxState, req: GatewayRequest) -> web.Response:
    partner, notify_id = req.params.get("partner", ""), req.params.get("notify_id", "")
    if not partner or not notify_id:
        answer = "invalid"
    else:
        answer = "true" if _notify_id_valid(state, partner, notify_id) else "false"
    return web.Response(text=answer, content_type="text/plain")


def _notify_id_valid(state: SandboxState, partner: str, notify_id: str) -> bool:
    """Issued for this partner, delivered within the TTL and not yet acknowledged (§4.5)."""
    notification = state.notifications.get(notify_id)
    if notification is None or notification.partner != partner or notification.acknowledged:
        return False
    last = notification.last_delivery
    loop = asyncio.get_running_loop()
    return last is not None and loop.time() - last <= state.config.notify_verify_ttl_seconds


async def _service_query(state: SandboxState, req: GatewayRequest) -> web.Response:
    try:
        check_signed(state, req, refund=False)
        batch_no, trade_no = req.params.get("batch_no", ""), req.params.get("trade_no", "")
        if not batch_no and not trade_no:
            raise SyncError("ILLEGAL_ARGUMENT", "batch_no or trade_no")
        response = _query(state, batch_no, trade_no)
    except SyncError as exc:
        response = QueryResponse(False, error_code=exc.code)
    charset = req.charset if req.charset_supported else DEFAULT_CHARSET
    body = render_query_response(response).encode(charset)
    return web.Response(body=body, headers={"Content-Type": f"text/plain; charset={charset}"})


def _query(state: SandboxState, batch_no: str, trade_no: str) -> QueryResponse:
    """Stored results matching both filters; details not evaluated yet are left out (see module doc)."""
    if batch_no:
        batches = [state.batches[batch_no]] if batch_no in state.batches else []
    else:
        batches = list(state.batches.values())
    matching = [
        (batch, record)
        for batch in batches
        for record in batch.details
        if not trade_no or record.detail.trade.trade_no == trade_no
    ]
    if not matching:
        return QueryResponse(False, error_code="REFUND_NOT_EXIST")
    items = tuple(QueryItem(batch.batch_no, record.result) for batch, record in matching if record.result)
    return QueryResponse(True, items)


Service = Callable[[SandboxState, GatewayRequest], Awaitable[web.Response]]
SERVICES: dict[str, Service] = {
    SERVICE_REFUND: _service_refund,
    SERVICE_NOTIFY_VERIFY: _service_notify_verify,
    SERVICE_QUERY: _service_query,
}
SERVICES_KEY = web.AppKey("gateway_services", dict)  # these, and what other faces answer at the gateway


def add_services(app: web.Application, services: Mapping[str, Service]) -> None:
    """Let another face answer `services` at the gateway (the password refund's confirmation page)."""
    app[SERVICES_KEY].update(services)


async def gateway(request: web.Request) -> web.Response:
    """`/gateway.do`: faults first, then the service named by `service`."""
    state = request.app[STATE_KEY]
    if state.faults.take("answer_5xx"):
        return web.Response(status=500, text="sandbox fault: answer_5xx")
    req = await read_request(request)
    service = request.app[SERVICES_KEY].get(req.params.get("service", ""))
    response = await service(state, req) if service else _ack("F", "ILLEGAL_SERVICE")
    hang = state.faults.take("hang_seconds")
    if hang:
        await state.pause(hang)
    if state.faults.take("close_after_processing") and request.transport is not None:
        request.transport.close()  # aiohttp then finds the connection gone and sends nothing
    return response


# --- evaluation and notifies ------------------------------------------------------------------------------


def evaluate(state: SandboxState, partner: str, detail: RefundDetail) -> ResultItem:
    """Refund one detail from the ledger and say so as a MAPI result item."""
    trade_no, amount = detail.trade.trade_no, detail.trade.amount
    code = state.ledger.refund(partner, trade_no, amount)
    dback_result = DBACK_RESULTS.get(state.ledger.trades[trade_no].dback or "") if code == SUCCESS else None
    return ResultItem(
        trade=TradeResult(
            trade_no,
            amount,
            code,
            is_dback=True if dback_result else None,
            dback_result=dback_result,
        ),
        royalties=tuple(
            RoyaltyResult(r.out_account, r.out_user_id, r.in_account, r.in_user_id, r.amount, code)
            for r in detail.royalties
        ),
        sub_trade=(
            SubTradeResult(detail.sub_trade.amount, detail.sub_trade.amount, code) if detail.sub_trade else None
        ),
    )


async def process_batch(state: SandboxState, batch: ReceivedBatch) -> None:
    """Evaluate every detail, then notify the merchant (and the dback URL for scripted 充退)."""
    if state.config.evaluation_delay_seconds:
        await asyncio.sleep(state.config.evaluation_delay_seconds)
    for record in batch.details:
        record.result = evaluate(state, batch.partner, record.detail)
    items = [record.result for record in batch.details if record.result]
    if batch.notify_url:
        params = _refund_notify_params(batch, items, state.now())
        _notify(state, batch, "batch_refund_notify", batch.notify_url, params)
    if batch.dback_notify_url:
        for index, item in enumerate(items):
            if item.trade.dback_result:
                params = _dback_notify_params(state, batch, item, index)
                _notify(state, batch, "dback_notify", batch.dback_notify_url, params)


def _refund_notify_params(batch: ReceivedBatch, items: Sequence[ResultItem], now: datetime) -> dict[str, str]:
    params = {
        "notify_type": NOTIFY_TYPE_REFUND,
        "batch_no": batch.batch_no,
        "success_num": str(sum(1 for item in items if item.succeeded)),
        "result_details": encode_result_details(items),
    }
    unfreezed = [
        UnfreezedDetail(
            unfreeze_order_no=f"{batch.batch_no}U{index + 1:04d}",
            freeze_order_no=f"{batch.batch_no}F{index + 1:04d}",
            amount=item.trade.amount,
            trade_no=item.trade.trade_no,
            processed_at=format_alipay_time(now),
            status=SUCCESS,
            code=SUCCESS,
        )
        for index, item in enumerate(items)
        if item.succeeded
    ]
    if batch.use_freeze_amount and unfreezed:
        params["unfreezed_details"] = encode_unfreezed_details(unfreezed)
    return params


def _dback_notify_params(state: SandboxState, batch: ReceivedBatch, item: ResultItem, index: int) -> dict[str, str]:
    trade = state.ledger.trades[item.trade.trade_no]
    return {
        "trade_no": trade.trade_no,
        "refund_id": f"{batch.batch_no}{index + 1:04d}",
        "refund_batch_no": batch.batch_no,
        "card_no": "622202******1234",
        "bank_name": "中国工商银行",
        "status": trade.dback or "",
    }


def _notify(state: SandboxState, batch: ReceivedBatch, kind: str, url: str, params: dict[str, str]) -> None:
    notification = Notification(kind, url, batch.partner, batch.charset, params)
    batch.notifications.append(notification)
    notifier.send(state, notification, batch.scheme)


def add_routes(app: web.Application) -> None:
    """Mount the MAPI gateway on the sandbox's app."""
    app[SERVICES_KEY] = dict(SERVICES)
    app.router.add_route("GET", GATEWAY_PATH, gateway)
    app.router.add_route("POST", GATEWAY_PATH, gateway)
