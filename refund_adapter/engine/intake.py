"""The core's own checks on every refund request a plugin hands over, whatever the platform.

Plugins validate their payloads; this is the second line: what cannot be a refund stays off the disk, and what
cannot be paid through Alipay is marked so, to be stored REJECTED rather than sent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from ..channels.accounts import clean_reason
from ..config import AlipayAccount
from ..metrics import Metrics
from ..models import RefundRequest, Unpayable
from ..money import CENT, CURRENCY, MAX_AMOUNT, amount_problem, is_trade_no
from ..store import EXCEEDS_PAID_AMOUNT, AcceptResult

log = logging.getLogger(__name__)


class InvalidRequest(ValueError):
    """A refund request the core refuses; `type` is the stable problem type, `detail` says which rule."""

    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


def _stored_amount(value: object, name: str, rounding: str) -> Decimal:
    """`value` as it is stored: whole fen, rounded when it has more decimals (`rounding`); InvalidRequest when it
    is no amount at all."""
    if isinstance(value, Decimal) and value.is_finite() and 0 < value <= MAX_AMOUNT:
        value = value.quantize(CENT, rounding)
    problem = amount_problem(value)
    if problem is not None:
        raise InvalidRequest("invalid-amount", f"{name} {problem}")
    return value  # type: ignore[return-value]  # amount_problem passed: a Decimal


def admit(request: RefundRequest, accounts: Mapping[str, AlipayAccount]) -> RefundRequest:
    """The request as it will be stored, or InvalidRequest when it cannot be stored as a refund at all.

    A refund that can be stored but not paid (another currency, no Alipay trade number, more than 2 decimals,
    more than its paid amount) comes back with its `rejection` code: the store keeps it REJECTED, once."""
    # An amount of more decimals is rejected, never paid: rounded up, what the operator sees errs by less than a
    # fen. A paid amount of more decimals (a shop that writes 3) only bounds the refunds: rounded down, it never
    # lets one more fen through.
    amount = _stored_amount(request.amount, "amount", ROUND_UP)
    paid = None if request.paid_amount is None else _stored_amount(request.paid_amount, "paid_amount", ROUND_DOWN)
    if not request.platform_refund_id:
        raise InvalidRequest("malformed-body", "the platform refund id is empty")
    account = accounts.get(request.alipay_account)
    if account is None:
        raise InvalidRequest("unknown-alipay-account", f"no Alipay account named {request.alipay_account!r}")
    rejection = request.rejection or _unpayable(request, amount, paid)
    admitted = dataclasses.replace(request, reason=clean_reason(account, request.reason),
                                   amount=amount, paid_amount=paid, rejection=rejection)
    return request if admitted == request else admitted


def _unpayable(request: RefundRequest, amount: Decimal, paid: Decimal | None) -> str | None:
    """The first reason Alipay could not pay this refund, or None."""
    if request.currency != CURRENCY:
        return Unpayable.CURRENCY
    if not is_trade_no(request.trade_no):
        return Unpayable.TRADE_NO
    if amount != request.amount:
        return Unpayable.PRECISION
    if paid is not None and amount > paid:
        return EXCEEDS_PAID_AMOUNT
    return None


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
