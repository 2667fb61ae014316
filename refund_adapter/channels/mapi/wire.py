"""The tokens every MAPI artefact is made of: the one error, charsets, codes, amounts and times as Alipay writes
them, and the `#`, `|`, `^` and `$$` separators.

The client, the simulated gateway and the query share this one reading of alipay-mapi.md so that they cannot
disagree about a separator or an amount. Nothing in `channels/mapi` does I/O or reads the clock (but the gateway
client). Every bad input raises AlipayFormatError, and nothing else escapes from a `decode_*` or `parse_*`
function.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from refund_adapter.money import AMOUNT_TEXT, AMOUNT_TEXT_RULE, BEIJING

SERVICE_REFUND = "refund_fastpay_by_platform_nopwd"
SERVICE_NOTIFY_VERIFY = "notify_verify"
SERVICE_QUERY = "refund_fastpay_query"
CHARSETS = frozenset({"utf-8", "gbk", "gb2312"})  # the `_input_charset` values of §1.1
# The Alipay error code a gateway answers when a refund request breaks the rule (mapping is (I), §8).
ARGUMENT_ERROR = "ILLEGAL_ARGUMENT"
DETAIL_ERROR = "DETAIL_DATA_FORMAT_ERROR"
BATCH_NO_ERROR = "BATCH_NO_FORMAT_ERROR"
DATE_ERROR = "REFUND_DATE_ERROR"
_USER_ID = re.compile(r"2088[0-9]{12}")
# (I) Alipay logon ids are e-mail addresses or (possibly masked) mobile numbers; no separator, no "%".
_ACCOUNT = re.compile(r"[0-9A-Za-z._@+*\-]{1,100}")
CODE = re.compile(r"[0-9A-Za-z_]{1,64}")
# Descriptive text Alipay sends (bank names, times of unknown format): anything but separators and controls.
FREE_TEXT = re.compile(r"[^\^|$#\x00-\x1f\x7f]{1,128}")
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
CODE_RULE = "must be an Alipay code of 1..64 characters [0-9A-Za-z_]"
FREE_TEXT_RULE = "must be 1..128 characters without ^ | $ # or control characters"
_T = TypeVar("_T")


class AlipayFormatError(ValueError):
    """The one error for protocol input that breaks a rule, so callers catch exactly one thing.

    `code` is the Alipay error a gateway answers when this input arrives in a refund request,
    which lets the simulator reply the way Alipay would without re-deriving the rule.
    """

    def __init__(self, field: str, rule: str, *, code: str = ARGUMENT_ERROR) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.code = code


def match_token(
    value: object, field: str, pattern: re.Pattern[str], rule: str, code: str = ARGUMENT_ERROR
) -> re.Match[str]:
    """Check a token against its whole grammar; a non-str is a broken rule too, never a TypeError."""
    found = pattern.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise AlipayFormatError(field, rule, code=code)
    return found


def check_token(value: object, field: str, pattern: re.Pattern[str], rule: str, code: str = ARGUMENT_ERROR) -> str:
    """Return the token once it matches its grammar, so validation and use are one expression."""
    return match_token(value, field, pattern, rule, code).string


def charset_codec(charset: str) -> str:
    """Normalise `_input_charset`; byte limits and encodability depend on it."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, TypeError):
        name = ""
    if name not in CHARSETS:
        raise AlipayFormatError("charset", f"must be one of {sorted(CHARSETS)}", code="ILLEGAL_CHARSET")
    return name


def parse_amount(text: str, field: str = "amount", *, strict: bool = True) -> Decimal:
    """Read CNY yuan with one grammar, so floats, exponents and NaN never reach the books.

    strict=False admits 0, for amounts Alipay echoes back (e.g. "80", "0.00").
    """
    value = Decimal(check_token(text, field, AMOUNT_TEXT, AMOUNT_TEXT_RULE, DETAIL_ERROR))
    if strict and value == 0:
        raise AlipayFormatError(field, "must be greater than 0", code=DETAIL_ERROR)
    return value


def amount_text(value: Decimal, field: str, *, strict: bool) -> str:
    """Write an amount with exactly 2 decimals; `parse_amount` re-checks sign and size in one place."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise AlipayFormatError(field, "must be a finite Decimal", code=DETAIL_ERROR)
    whole, _, fraction = f"{value:f}".partition(".")
    if fraction[2:].strip("0"):
        raise AlipayFormatError(field, "must have at most 2 decimals", code=DETAIL_ERROR)
    text = f"{whole}.{fraction[:2]:0<2}"
    parse_amount(text, field, strict=strict)
    return text


def format_amount(value: Decimal, field: str = "amount") -> str:
    """Write a refund amount (> 0) as Alipay's examples do: "5.00"."""
    return amount_text(value, field, strict=True)


def _in_beijing(moment: datetime, field: str) -> datetime:
    """Alipay's clock is Beijing time; a naive datetime would silently mean the server's zone."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise AlipayFormatError(field, "must be a timezone-aware datetime", code=DATE_ERROR)
    try:
        return moment.astimezone(BEIJING)
    except OverflowError:
        raise AlipayFormatError(field, "is out of range", code=DATE_ERROR) from None


def format_alipay_time(moment: datetime) -> str:
    """Write "yyyy-MM-dd HH:mm:ss" in Beijing time, 24-hour (sub-seconds are dropped)."""
    local = _in_beijing(moment, "moment")
    return local.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def parse_alipay_time(text: str, field: str = "refund_date") -> datetime:
    """Read "yyyy-MM-dd HH:mm:ss" as an aware Beijing datetime."""
    found = match_token(text, field, _TIME, "must be yyyy-MM-dd HH:mm:ss (24-hour)", DATE_ERROR)
    try:
        return datetime(*(int(part) for part in found.groups()), tzinfo=BEIJING)
    except ValueError:
        raise AlipayFormatError(field, "is not a real date and time", code=DATE_ERROR) from None


def check_party(account: str, user_id: str, field: str, code: str) -> None:
    """A royalty or fee party is named by an account, a 2088 user id, or both; never by neither."""
    if account == "" and user_id == "":
        raise AlipayFormatError(field, "needs an account or a user id", code=code)
    if account != "":
        check_token(account, f"{field}_account", _ACCOUNT, "must be an Alipay account (e-mail or mobile)", code)
    if user_id != "":
        check_token(user_id, f"{field}_user_id", _USER_ID, "must be 16 digits starting 2088", code)


def join_items(items: Sequence[_T], field: str, render: Callable[[_T, str], str]) -> str:
    """Join `#`-separated items, naming each one's position in errors."""
    if len(items) == 0:
        raise AlipayFormatError(field, "needs at least one item")
    return "#".join(render(item, f"{field}[{index}]") for index, item in enumerate(items))


def split_items(text: str, field: str, parse: Callable[[str, str], _T]) -> list[_T]:
    """Split `#`-separated items, naming each one's position in errors."""
    if not isinstance(text, str) or text == "":
        raise AlipayFormatError(field, "is required", code=DETAIL_ERROR)
    return [parse(chunk, f"{field}[{index}]") for index, chunk in enumerate(text.split("#"))]


def split_fields(text: str, field: str, *counts: int) -> list[str]:
    """Split one `^` record and insist on its field count."""
    parts = text.split("^")
    if len(parts) not in counts:
        expected = " or ".join(map(str, counts))
        raise AlipayFormatError(field, f"needs {expected} ^-separated fields, got {len(parts)}", code=DETAIL_ERROR)
    return parts


def split_sub_trade(text: str, field: str) -> tuple[str, str | None]:
    """Split off the optional `$$` sub-trade part (at most one)."""
    head, *rest = text.split("$$")
    if len(rest) > 1:
        raise AlipayFormatError(field, "has more than one $$ part", code=DETAIL_ERROR)
    return head, rest[0] if rest else None
