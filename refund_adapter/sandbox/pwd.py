"""The sandbox's face for the password refund, `refund_fastpay_by_platform_pwd` (§1.5): the page the merchant's
operator reaches with the signed link, where Alipay would have them log in and confirm with the payment password.

`GET` or `POST` of the request at the gateway checks it as the MAPI face checks a nopwd batch (signature, batch_no
of today, batch_num, detail_data), and also: `seller_user_id` or `seller_email` is required, a royalty or sub-trade
part is PWD_REFUND_NOT_ALLOW_ROYALTY, and the link is good on its Beijing day only (BATCH_NO_FORMAT_ERROR after:
Alipay's "外部批次号格式错误" for a link used on a later day). The page shows the batch, its details and a password
field. Confirming with `SandboxConfig.payment_password` makes the batch Alipay's exactly as a nopwd submit would
(the same evaluation, the same `batch_refund_notify`); a batch_no already taken is DUPLICATE_BATCH_NO, so two
links of one batch never pay twice. Refusals are pages naming the code.

Decisions where the reference leaves room (I): a wrong password is refused with PASSWORD_ERROR (the page's code,
not one of the MAPI table) and the operator may try again; the link's day is checked again on confirming, so a
page opened before midnight and confirmed after is refused; `refund_date` must be of today (not within the hour
the nopwd face allows: an operator may open the link hours after it was made).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from aiohttp import web

from refund_adapter.channels.mapi.batch_no import validate_batch_no
from refund_adapter.channels.mapi.pwd import SERVICE_PWD_REFUND, refuse_royalties
from refund_adapter.money import beijing_now

from . import mapi
from .ledger import money_json
from .mapi import GatewayRequest, ReceivedBatch, SyncError, check_signed, codec_errors, process_batch, received_batch
from .state import STATE_KEY, SandboxState

log = logging.getLogger(__name__)

CONFIRM_PATH = "/pwd/confirm"
PASSWORD_ERROR = "PASSWORD_ERROR"
UNKNOWN_LINK = "ILLEGAL_ARGUMENT"


@dataclass
class PendingApproval:
    """A link opened and its page shown; the batch becomes Alipay's once the operator confirms."""

    batch: ReceivedBatch
    seller: str


PENDING_KEY = web.AppKey("pwd_pending", dict)  # page token -> PendingApproval


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)} · 支付宝 sandbox'
            f'</title></head><body><h1>{escape(title)}</h1>{body}</body></html>')
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def _refused(code: str, detail: str) -> web.Response:
    log.info("sandbox password refund refused: %s %s", code, detail)
    return _page("退款失败 Refund refused", f'<p id="error"><code>{escape(code)}</code> {escape(detail)}</p>')


def _seller(req: GatewayRequest, state: SandboxState) -> str:
    """Who confirms: `seller_user_id` (which wins) or `seller_email`; this sandbox has one seller, its partner."""
    user_id, email = req.params.get("seller_user_id", ""), req.params.get("seller_email", "")
    if not (user_id or email):
        raise SyncError("ILLEGAL_ARGUMENT", "seller_user_id or seller_email is required")
    if user_id and user_id != state.config.partner:
        raise SyncError("SELLER_INFO_NOT_EXIST", user_id)
    return user_id or email


def _details_table(batch: ReceivedBatch) -> str:
    rows = "".join(f"<tr><td><code>{escape(r.detail.trade.trade_no)}</code></td><td>{money_json(r.detail.trade.amount)}"
                   f"</td><td>{escape(r.detail.trade.reason)}</td></tr>" for r in batch.details)
    return f'<table id="details"><tr><th>交易号</th><th>金额</th><th>理由</th></tr>{rows}</table>'


async def _service_pwd(state: SandboxState, req: GatewayRequest, pending: dict[str, PendingApproval]
                       ) -> web.Response:
    """The link opened: every check, then the confirmation page."""
    try:
        scheme = check_signed(state, req, refund=False)
        seller = _seller(req, state)
        batch = received_batch(state, req, scheme, nopwd=False)
        with codec_errors():
            refuse_royalties([record.detail for record in batch.details])
    except SyncError as exc:
        return _refused(exc.code, str(exc))
    token = secrets.token_urlsafe(16)
    pending[token] = PendingApproval(batch, seller)
    total = sum((record.detail.trade.amount for record in batch.details), Decimal("0.00"))
    body = (f'<dl><dt>批次号 batch_no</dt><dd id="batch_no">{escape(batch.batch_no)}</dd>'
            f'<dt>卖家 seller</dt><dd>{escape(seller)}</dd><dt>笔数</dt><dd>{len(batch.details)}</dd>'
            f'<dt>总金额 total</dt><dd id="total">{money_json(total)}</dd></dl>{_details_table(batch)}'
            f'<form method="post" action="{CONFIRM_PATH}"><input type="hidden" name="token" value="{token}">'
            '<label>支付密码 payment password <input type="password" id="password" name="password"></label>'
            '<button type="submit" id="confirm">确认退款 Confirm</button></form>')
    return _page("批量退款确认 Confirm the refunds", body)


async def confirm(request: web.Request) -> web.Response:
    """`POST /pwd/confirm`: the password checked, the link's day checked again; the batch made Alipay's."""
    state, pending = request.app[STATE_KEY], request.app[PENDING_KEY]
    form = await request.post()
    approval = pending.get(str(form.get("token", "")))
    if approval is None:
        return _refused(UNKNOWN_LINK, "this page is not one the sandbox showed: open the link again")
    batch = approval.batch
    try:
        with codec_errors():
            validate_batch_no(batch.batch_no, today=beijing_now(state.now()).date())
    except SyncError as exc:
        del pending[str(form["token"])]
        return _refused(exc.code, "the link is of another day: make a new one")
    if not hmac.compare_digest(str(form.get("password", "")).encode(), state.config.payment_password.encode()):
        return _refused(PASSWORD_ERROR, "wrong payment password")
    del pending[str(form["token"])]
    if batch.batch_no in state.batches:
        return _refused("DUPLICATE_BATCH_NO", f"batch {batch.batch_no} was already confirmed")
    batch.received_at = state.now()
    state.batches[batch.batch_no] = batch
    state.spawn(process_batch(state, batch))
    log.info("sandbox password refund confirmed: batch_no=%s with %d details", batch.batch_no, len(batch.details))
    return _page("退款申请已提交 Refund submitted",
                 f'<p id="result">SUCCESS: batch <code>{escape(batch.batch_no)}</code> submitted</p>')


def add_routes(app: web.Application) -> None:
    """The password refund at the gateway (GET or POST of the signed request) and its confirmation form."""
    pending: dict[str, PendingApproval] = {}
    app[PENDING_KEY] = pending

    async def service(state: SandboxState, req: GatewayRequest) -> web.Response:
        return await _service_pwd(state, req, pending)

    mapi.add_services(app, {SERVICE_PWD_REFUND: service})
    app.router.add_post(CONFIRM_PATH, confirm)
