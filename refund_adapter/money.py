"""Amounts, currency, trade numbers and Alipay's clock: one definition each, for the intake, the plugins and every
channel.

Every rule is a full match over ASCII. `re.match` with `$` lets a final newline through, and `\\d` or
`str.isdigit` take the digits of every script ("１２", "١٢"), which Alipay's grammar does not: a value that
slips past one copy of a rule and not another is how one refund came to jam a whole batch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

CURRENCY = "CNY"  # Alipay's MAPI batch refund pays back in CNY yuan only (§1.4)
BEIJING = ZoneInfo("Asia/Shanghai")  # Alipay's clock: its dates (a refund's day, a batch's date) are Beijing's
CENT = Decimal("0.01")  # (I) amounts carry at most 2 decimals (§1.4: "CNY yuan, ≤2 fractional digits, >0")
# (I) The reference gives no upper bound per detail. 12 integer digits is far above any Alipay refund and keeps
# every amount exact in Decimal and in the store's 64-bit integer fen.
MAX_AMOUNT = Decimal("999999999999.99")
# (I) The reference names the field (原付款支付宝交易号, §1.4) but gives it no grammar. Alipay's trade numbers are
# 16 or 28 digits (the doc sample is 2011011201037066) and the OpenAPI twin is String(64); letters are admitted
# for other eras and for sandboxes. `[0-9A-Za-z]` is ASCII only: never `\d`, `\w` or `str.isalnum`.
TRADE_NO = re.compile(r"[0-9A-Za-z]{1,64}")
TRADE_NO_RULE = "must be 1 to 64 ASCII letters or digits"
# Plain decimal text: ASCII digits, at most 12 before the point and 2 after; no sign, exponent, space or comma.
AMOUNT_TEXT = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
AMOUNT_TEXT_RULE = "must be plain digits with at most 2 decimals (no sign, exponent or spaces)"
AMOUNT_RULE = f"{AMOUNT_TEXT_RULE}, greater than zero"  # what parse_amount_text reads
# The same as platforms write amounts, with any number of decimals (WooCommerce writes the shop's: "10.500").
DECIMAL_TEXT = re.compile(r"[0-9]{1,12}(?:\.[0-9]+)?")


def is_trade_no(value: object) -> bool:
    """Whether `value` is a trade number Alipay's detail_data can carry, whole (a final newline included)."""
    return isinstance(value, str) and TRADE_NO.fullmatch(value) is not None


def beijing_now(now: datetime | None = None) -> datetime:
    """The current moment on Alipay's clock; pass `now` to keep callers testable. A naive `now` would silently
    mean the server's zone, so it is refused (ValueError)."""
    moment = datetime.now(UTC) if now is None else now
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError("now: must be a timezone-aware datetime")
    return moment.astimezone(BEIJING)


def next_beijing_midnight(now: datetime) -> datetime:
    """When Alipay's day of `now` ends: what it accepts "on the day it is made" (a batch_no, a password link) it
    refuses from then on."""
    tomorrow = beijing_now(now).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=BEIJING)


def amount_problem(value: object) -> str | None:
    """Why `value` cannot be a refund amount, or None: a finite Decimal, > 0, whole fen, at most MAX_AMOUNT."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return "must be a finite Decimal"
    if value <= 0:
        return "must be greater than zero"
    if value > MAX_AMOUNT:
        return f"must be at most {MAX_AMOUNT}"
    if value != value.quantize(CENT):
        return "has more than 2 decimals"
    return None


def to_amount(value: Decimal) -> Decimal | None:
    """`value` written with exactly 2 decimals when it is a valid refund amount, else None (never rounded)."""
    return value.quantize(CENT) if amount_problem(value) is None else None


def parse_decimal_text(text: object) -> Decimal | None:
    """A positive-or-zero decimal written as plain text, with any number of decimals ("12.30", "80", "10.505"), or
    None when it is not one. Whether it is a payable amount is the core intake's question: a refund of more than
    2 decimals is stored rejected, zero is refused (money.amount_problem)."""
    if not isinstance(text, str) or DECIMAL_TEXT.fullmatch(text) is None:
        return None
    return Decimal(text)


def parse_amount_text(text: object) -> Decimal | None:
    """A payable amount written as plain text with at most 2 decimals ("12.30", "80"), greater than zero, or None:
    for amounts a plugin reads from its own files or settings (a payment's total), where a third decimal is an
    error rather than a refund to store rejected."""
    if not isinstance(text, str) or AMOUNT_TEXT.fullmatch(text) is None:
        return None
    return to_amount(Decimal(text))
