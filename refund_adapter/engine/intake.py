"""The core's own checks on every refund request a plugin hands over, whatever the platform.

Plugins validate their payloads; this is the second line that keeps an impossible refund off the disk.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

from ..alipay.codec import clean_reason
from ..config import AlipayAccount
from ..metrics import Metrics
from ..models import RefundRequest
from ..money import CURRENCY, TRADE_NO_RULE, amount_problem, is_trade_no
from ..store import AcceptResult

log = logging.getLogger(__name__)


class InvalidRequest(ValueError):
    """A refund request the core refuses; `type` is the stable problem type, `detail` says which rule."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


def _check_money(value: object, name: str) -> None:
    problem = amount_problem(value)
    if problem is not None:
        raise InvalidRequest("invalid-amount", f"{name} {problem}")


def admit(request: RefundRequest, accounts: Mapping[str, AlipayAccount]) -> RefundRequest:
    """The request as it will be stored (reason cleaned), or InvalidRequest saying what is impossible about it."""
    _check_money(request.amount, "amount")
    if request.paid_amount is not None:
        _check_money(request.paid_amount, "paid_amount")
        if request.amount > request.paid_amount:
            raise InvalidRequest("amount-exceeds-paid", f"amount {request.amount} exceeds paid {request.paid_amount}")
    if request.currency != CURRENCY:
        raise InvalidRequest("unsupported-currency", f"Alipay MAPI refunds are in {CURRENCY}, not {request.currency!r}")
    if not is_trade_no(request.trade_no):
        raise InvalidRequest("invalid-trade-no", f"trade_no {TRADE_NO_RULE}")
    if not request.platform_refund_id:
        raise InvalidRequest("malformed-body", "the platform refund id is empty")
    account = accounts.get(request.alipay_account)
    if account is None:
        raise InvalidRequest("unknown-alipay-account", f"no Alipay account named {request.alipay_account!r}")
    reason = clean_reason(request.reason, account.input_charset)
    return request if reason == request.reason else dataclasses.replace(request, reason=reason)


def conflicts(results: Sequence[AcceptResult], metrics: Metrics) -> list[AcceptResult]:
    """The redeliveries among `results` whose content differs from their stored refund, each counted and logged
    as a WARNING (field names only, the ids cut short: the log line stays small whatever a platform sends)."""
    found = [result for result in results if result.conflict]
    for result in found:
        request = result.refund.request
        metrics.refund_conflicts.labels(platform=request.platform).inc()
        log.warning("%s refund %.80r of shop %.80r conflicts with stored refund %d: %s differ; nothing changed",
                    request.platform, request.platform_refund_id, request.shop, result.refund.id,
                    ", ".join(result.conflict))
    return found
