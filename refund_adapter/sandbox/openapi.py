"""The sandbox's OpenAPI face: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query` at
`/openapi/gateway.do`, on the same ledger as the MAPI face.

Requests are checked as the open platform documents (app_id, sign_type, the RSA2/RSA signature over the
canonical string; failures answer an unsigned `error_response`), refunds are made at once from the ledger, and
every answer is signed with Alipay's key over the exact text of its `*_response` node. Each refund call is one
entry of `GET /sandbox/batches` (`"channel": "openapi"`). Decisions where the documents leave room:
* A refund is known by (trade_no, out_request_no). Sent again with the same amount it answers 10000 with
  `fund_change=N` once paid; a refund refused earlier is tried again (a seller who topped up may resend). With
  another amount it answers ACQ.DISCORDANT_REPEAT_REQUEST.
* Ledger refusals become ACQ codes (`ACQ_CODES`); a trade of another partner is ACQ.TRADE_NOT_EXIST for this app.
* The query answers 10000 with `refund_amount` and `refund_status=REFUND_SUCCESS` for a paid refund, 10000
  without them for one never made or refused, and ACQ.TRADE_NOT_EXIST for an unknown trade.
* Faults (shared switches): `answer_5xx`, `hang_seconds` (after processing), `close_after_processing`, and this
  face's own `acq_system_error` ("before": answered without processing, "after": processed, then answered
  ACQ.SYSTEM_ERROR), `answer_fund_change_n` (processed, answered as a repeat) and `rate_limit` (40005, nothing
  processed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from refund_adapter.channels.openapi.errors import SYSTEM_ERROR
from refund_adapter.channels.openapi.messages import BEIJING, METHOD_REFUND, METHOD_REFUND_QUERY
from refund_adapter.channels.openapi.response import ERROR_NODE, render_body, render_node, response_node
from refund_adapter.channels.openapi.signing import CHARSET, SIGN_TYPES, Signer

from .ledger import SUCCESS, money_json
from .state import STATE_KEY, SandboxState

log = logging.getLogger(__name__)

GATEWAY_PATH = "/openapi/gateway.do"
ACQ_CODES = {
    "TRADE_NOT_EXISTS": "ACQ.TRADE_NOT_EXIST",
    "NOT_THIS_PARTNERS_TRADE": "ACQ.TRADE_NOT_EXIST",
    "TRADE_HAS_CLOSED": "ACQ.TRADE_STATUS_ERROR",
    "TRADE_HAS_FINISHED": "ACQ.TRADE_HAS_FINISHED",
    "TRADE_STATUS_ERROR": "ACQ.TRADE_STATUS_ERROR",
    "REFUND_AMOUNT_NOT_VALID": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
    "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH": "ACQ.SELLER_BALANCE_NOT_ENOUGH",
}


class Refused(Exception):
    """The call is answered with this code (and sub_code); `signed` is False for the gateway's own refusals."""

    def __init__(self, code: str, sub_code: str, msg: str, *, signed: bool = True) -> None:
        super().__init__(f"{code} {sub_code}: {msg}")
        self.fields = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": msg}
        self.signed = signed


@dataclass
class OpenApiRefund:
    """One refund this face knows, by (trade_no, out_request_no)."""

    trade_no: str
    out_request_no: str
    amount: Decimal
    reason: str
    code: str | None = None  # SUCCESS once paid, else the ledger's last refusal
    paid_at: datetime | None = None


@dataclass
class OpenApiCall:
    """One `alipay.trade.refund` call as received, for `GET /sandbox/batches`."""

    refund: OpenApiRefund
    received_at: datetime
    sign_type: str
    answer: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": "openapi",
            "method": METHOD_REFUND,
            "trade_no": self.refund.trade_no,
            "out_request_no": self.refund.out_request_no,
            "amount": money_json(self.refund.amount),
            "reason": self.refund.reason,
            "received_at": self.received_at.isoformat(),
            "sign_type": self.sign_type,
            "answer": self.answer,
            "refund_code": self.refund.code,
        }


def _signer(state: SandboxState, sign_type: str) -> Signer:
    config = state.config
    return Signer(sign_type, config.alipay_private_key, config.merchant_public_key)


def _check(state: SandboxState, params: Mapping[str, str]) -> Signer:
    """app_id, sign_type and signature, as the gateway checks them before the method runs."""
    if not state.config.app_id or params.get("app_id") != state.config.app_id:
        raise Refused("40002", "isv.invalid-app-id", "无效的AppID参数", signed=False)
    sign_type = params.get("sign_type", "")
    if sign_type not in SIGN_TYPES or not (state.config.alipay_private_key and state.config.merchant_public_key):
        raise Refused("40002", "isv.invalid-signature-type", "无效的签名类型", signed=False)
    signer = _signer(state, sign_type)
    if not signer.verify_params(params):
        raise Refused("40002", "isv.invalid-signature", "验签出错", signed=False)
    return signer


def _biz(params: Mapping[str, str], *required: str) -> dict[str, Any]:
    try:
        biz = json.loads(params.get("biz_content", ""))
    except ValueError:
        raise Refused("40002", "isv.illegal-json", "biz_content is not JSON", signed=False) from None
    if not isinstance(biz, dict):
        raise Refused("40002", "isv.illegal-json", "biz_content is not an object", signed=False)
    missing = [name for name in required if not isinstance(biz.get(name), str) or not biz[name]]
    if missing:
        raise Refused("40004", "ACQ.INVALID_PARAMETER", f"参数无效 missing {', '.join(missing)}")
    return biz


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise Refused("40004", "ACQ.INVALID_PARAMETER", "参数无效 refund_amount")
    return amount


def _refund(state: SandboxState, params: Mapping[str, str], sign_type: str) -> dict[str, Any]:
    """One `alipay.trade.refund`: paid once per (trade_no, out_request_no), whatever the number of calls."""
    biz = _biz(params, "trade_no", "refund_amount", "out_request_no")
    trade_no, out_request_no, amount = biz["trade_no"], biz["out_request_no"], _amount(biz["refund_amount"])
    if len(out_request_no) > 64:
        raise Refused("40004", "ACQ.INVALID_PARAMETER", "参数无效 out_request_no")
    if state.faults.take("rate_limit"):
        raise Refused("40005", "isv.app-call-limited", "应用调用次数超限", signed=False)
    refunds = state.openapi_refunds
    refund = refunds.setdefault((trade_no, out_request_no),
                                OpenApiRefund(trade_no, out_request_no, amount, str(biz.get("refund_reason", ""))))
    call = OpenApiCall(refund, state.now(), sign_type)
    state.openapi_calls.append(call)
    try:
        call.answer = _pay(state, refund, amount)
    except Refused as refused:
        call.answer = refused.fields
        raise
    return call.answer


def _pay(state: SandboxState, refund: OpenApiRefund, amount: Decimal) -> dict[str, Any]:
    if amount != refund.amount:
        raise Refused("40004", "ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
    system_error = state.faults.take("acq_system_error")
    if system_error == "before":
        raise Refused("40004", SYSTEM_ERROR, "系统异常")
    repeat = refund.code == SUCCESS
    if not repeat:
        refund.code = state.ledger.refund(state.config.partner, refund.trade_no, amount)
        if refund.code != SUCCESS:
            raise Refused("40004", ACQ_CODES.get(refund.code, "ACQ.SYSTEM_ERROR"), refund.code)
        refund.paid_at = state.now()
    if system_error == "after":
        raise Refused("40004", SYSTEM_ERROR, "系统异常")
    trade = state.ledger.trades[refund.trade_no]
    return {
        "code": "10000",
        "msg": "Success",
        "trade_no": refund.trade_no,
        "out_trade_no": f"T{refund.trade_no}",
        "buyer_logon_id": "159****5620",
        "fund_change": "N" if repeat or state.faults.take("answer_fund_change_n") else "Y",
        "refund_fee": money_json(trade.refunded),
        "gmt_refund_pay": _time(refund.paid_at),
        "send_back_fee": money_json(amount),
    }


def _time(moment: datetime | None) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _query(state: SandboxState, params: Mapping[str, str], _: str) -> dict[str, Any]:
    """`alipay.trade.fastpay.refund.query` of one (trade_no, out_request_no)."""
    biz = _biz(params, "trade_no", "out_request_no")
    if biz["trade_no"] not in state.ledger.trades:
        raise Refused("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
    answer: dict[str, Any] = {"code": "10000", "msg": "Success", "trade_no": biz["trade_no"],
                              "out_request_no": biz["out_request_no"]}
    refund = state.openapi_refunds.get((biz["trade_no"], biz["out_request_no"]))
    if refund is not None and refund.code == SUCCESS:
        trade = state.ledger.trades[refund.trade_no]
        answer.update(refund_amount=money_json(refund.amount), total_amount=money_json(trade.amount),
                      refund_status="REFUND_SUCCESS", gmt_refund_pay=_time(refund.paid_at),
                      refund_reason=refund.reason)
    return answer


Method = Callable[[SandboxState, Mapping[str, str], str], dict[str, Any]]
METHODS: dict[str, Method] = {METHOD_REFUND: _refund, METHOD_REFUND_QUERY: _query}


def _answer(state: SandboxState, params: Mapping[str, str]) -> str:
    """The body: the method's node signed, or the gateway's refusal unsigned."""
    method = params.get("method", "")
    node_name = response_node(method) if method in METHODS else ERROR_NODE
    signer: Signer | None = None
    try:
        if method not in METHODS:
            raise Refused("40002", "isv.invalid-method", "不存在的方法名", signed=False)
        signer = _check(state, params)
        fields = METHODS[method](state, params, signer.sign_type)
    except Refused as refused:
        fields = refused.fields
        signer = signer if refused.signed else None
    text = render_node(fields)
    log.info("sandbox openapi %s -> %s %s", method, fields.get("code"), fields.get("sub_code", ""))
    return render_body(node_name, text, signer.sign_text(text) if signer else None)


async def gateway(request: web.Request) -> web.StreamResponse:
    """`/openapi/gateway.do`: the shared faults around the method named by `method`."""
    state = request.app[STATE_KEY]
    if state.faults.take("answer_5xx"):
        return web.Response(status=500, text="sandbox fault: answer_5xx")
    params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
    params.update(parse_qsl((await request.read()).decode(CHARSET, "replace"), keep_blank_values=True))
    body = _answer(state, params)
    await _after_processing(state, request)
    return web.Response(text=body, content_type="text/html", charset=CHARSET)  # Alipay's own content type


async def _after_processing(state: SandboxState, request: web.Request) -> None:
    """The faults that lose an answer once the call was processed: a hang, or the connection closed."""
    hang = state.faults.take("hang_seconds")
    if hang:
        await state.pause(hang)
    if state.faults.take("close_after_processing") and request.transport is not None:
        request.transport.close()


def add_routes(app: web.Application) -> None:
    """Mount the OpenAPI gateway on the sandbox's app."""
    app.router.add_route("GET", GATEWAY_PATH, gateway)
    app.router.add_route("POST", GATEWAY_PATH, gateway)
