"""The notifies (§4.2, §5): `batch_refund_notify` and the 充退 (dback) notify, read and cross-checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from refund_adapter.money import TRADE_NO, TRADE_NO_RULE

from .batch_no import batch_no_date
from .results import ResultItem, UnfreezedDetail, decode_result_details, decode_unfreezed_details
from .wire import FREE_TEXT, FREE_TEXT_RULE, AlipayFormatError, check_token, parse_alipay_time

NOTIFY_TYPE_REFUND = "batch_refund_notify"
DbackStatus = Literal["S", "F", "I", "P"]
_NOTIFY_ID = re.compile(r"[!-~]{1,128}")
_SUCCESS_NUM = re.compile(r"[0-9]{1,4}")
_DBACK_STATUSES: Mapping[str, DbackStatus] = {"S": "S", "F": "F", "I": "I", "P": "P"}


def _param(params: Mapping[str, str], name: str) -> str | None:
    """A notify parameter; empty counts as absent, as in the signature rules (§2.1)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AlipayFormatError(name, "must be a string")
    return value


def _required(params: Mapping[str, str], name: str) -> str:
    """A notify parameter that must be present."""
    value = _param(params, name)
    if value is None:
        raise AlipayFormatError(name, "is required")
    return value


def _descriptive(params: Mapping[str, str], name: str) -> str:
    """Optional free text (bank names, masked card numbers), "" when absent."""
    value = _param(params, name)
    return "" if value is None else check_token(value, name, FREE_TEXT, FREE_TEXT_RULE)


def read_notify_id(params: Mapping[str, str]) -> str:
    """The id `notify_verify` is asked about; opaque, but it travels in a URL."""
    return check_token(_required(params, "notify_id"), "notify_id", _NOTIFY_ID, "must be 1..128 visible ASCII")


@dataclass(frozen=True)
class RefundNotify:
    """A `batch_refund_notify`, with results parsed and cross-checked."""

    notify_time: datetime
    notify_id: str
    batch_no: str
    success_num: int
    results: tuple[ResultItem, ...]
    unfreezed: tuple[UnfreezedDetail, ...] = ()


def parse_refund_notify(params: Mapping[str, str]) -> RefundNotify:
    """Read a refund notify's parameters (the signature is checked elsewhere, over the same params).

    success_num must equal the number of SUCCESS trade results, which also bounds it by the item count.
    """
    if _required(params, "notify_type") != NOTIFY_TYPE_REFUND:
        raise AlipayFormatError("notify_type", f"must be {NOTIFY_TYPE_REFUND}")
    results = tuple(decode_result_details(_required(params, "result_details")))
    success_num = int(check_token(_required(params, "success_num"), "success_num", _SUCCESS_NUM, "must be digits"))
    succeeded = sum(item.succeeded for item in results)
    if success_num != succeeded:
        raise AlipayFormatError("success_num", f"is {success_num}, but {succeeded} trade results are SUCCESS")
    unfreezed = _param(params, "unfreezed_details")
    batch_no = _required(params, "batch_no")
    batch_no_date(batch_no, "batch_no")
    return RefundNotify(
        notify_time=parse_alipay_time(_required(params, "notify_time"), "notify_time"),
        notify_id=read_notify_id(params),
        batch_no=batch_no,
        success_num=success_num,
        results=results,
        unfreezed=tuple(decode_unfreezed_details(unfreezed)) if unfreezed is not None else (),
    )


@dataclass(frozen=True)
class DbackNotify:
    """The 充退 notify (§5): whether money went back to the buyer's card (S) or stayed in the balance."""

    notify_id: str
    trade_no: str
    refund_id: str
    batch_no: str
    card_no: str
    bank_name: str
    status: DbackStatus
    notify_time: datetime | None = None


def parse_dback_notify(params: Mapping[str, str]) -> DbackNotify:
    """Read a 充退 notify; `batch_no` comes from `refund_batch_no`.

    (I) card_no and bank_name are only descriptive and their presence is unconfirmed, so they may be
    absent (read as ""); notify_time is optional for the same reason.
    """
    status = _required(params, "status")
    if status not in _DBACK_STATUSES:
        raise AlipayFormatError("status", "must be S, F, I or P")
    batch_no = _required(params, "refund_batch_no")
    batch_no_date(batch_no, "refund_batch_no")
    notify_time = _param(params, "notify_time")
    return DbackNotify(
        notify_id=read_notify_id(params),
        trade_no=check_token(_required(params, "trade_no"), "trade_no", TRADE_NO, TRADE_NO_RULE),
        refund_id=check_token(_required(params, "refund_id"), "refund_id", TRADE_NO, TRADE_NO_RULE),
        batch_no=batch_no,
        card_no=_descriptive(params, "card_no"),
        bank_name=_descriptive(params, "bank_name"),
        status=_DBACK_STATUSES[status],
        notify_time=parse_alipay_time(notify_time, "notify_time") if notify_time is not None else None,
    )
