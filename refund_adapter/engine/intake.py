"""The core's own checks on every refund request a plugin hands over, whatever the platform.

Plugins validate their payloads; this is the second line that keeps an impossible refund off the disk.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal

from ..alipay.codec import clean_reason
from ..config import AlipayAccount
from ..models import RefundRequest

TRADE_NO = re.compile(r"^[0-9A-Za-z]{1,64}$")
CENT = Decimal("0.01")


class InvalidRequest(ValueError):
    """A refund request the core refuses; `type` is the stable problem type, `detail` says which rule."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


def _check_money(value: object, name: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidRequest("invalid-amount", f"{name} must be a finite Decimal")
    if value <= 0:
        raise InvalidRequest("invalid-amount", f"{name} must be greater than zero")
    if value != value.quantize(CENT):
        raise InvalidRequest("invalid-amount", f"{name} has more than 2 decimals")


def admit(request: RefundRequest, accounts: Mapping[str, AlipayAccount]) -> RefundRequest:
    """The request as it will be stored (reason cleaned), or InvalidRequest saying what is impossible about it."""
    _check_money(request.amount, "amount")
    if request.paid_amount is not None:
        _check_money(request.paid_amount, "paid_amount")
        if request.amount > request.paid_amount:
            raise InvalidRequest("amount-exceeds-paid", f"amount {request.amount} exceeds paid {request.paid_amount}")
    if request.currency != "CNY":
        raise InvalidRequest("unsupported-currency", f"Alipay MAPI refunds are in CNY, not {request.currency!r}")
    if not TRADE_NO.match(request.trade_no):
        raise InvalidRequest("invalid-trade-no", "trade_no must be 1 to 64 letters or digits")
    if not request.platform_refund_id:
        raise InvalidRequest("malformed-body", "the platform refund id is empty")
    account = accounts.get(request.alipay_account)
    if account is None:
        raise InvalidRequest("unknown-alipay-account", f"no Alipay account named {request.alipay_account!r}")
    reason = clean_reason(request.reason, account.input_charset)
    return request if reason == request.reason else dataclasses.replace(request, reason=reason)
