"""The Alipay MAPI wire formats of `refund_fastpay_by_platform_nopwd`, pure and strict.

The client, the simulated gateway and the reconciler share this one reading of alipay-mapi.md so that
they cannot disagree about a separator or an amount. Nothing here does I/O or reads the clock unless a
function takes `now=None`. Every bad input raises AlipayFormatError, and nothing else escapes from a
`decode_*` or `parse_*` function.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, TypeVar
from urllib.parse import unquote
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

from defusedxml import ElementTree as SafeElementTree

from refund_adapter.money import AMOUNT_TEXT, AMOUNT_TEXT_RULE, TRADE_NO, TRADE_NO_RULE

BEIJING = ZoneInfo("Asia/Shanghai")
SERVICE_REFUND = "refund_fastpay_by_platform_nopwd"
SERVICE_NOTIFY_VERIFY = "notify_verify"
SERVICE_QUERY = "refund_fastpay_query"
NOTIFY_TYPE_REFUND = "batch_refund_notify"
MAX_DETAILS = 1000
MAX_REASON_BYTES = 256
FORBIDDEN_REASON_CHARS = "^|$#"
# Printable ASCII but the forbidden characters, within the byte limit in every charset: nothing to clean.
_PLAIN_REASON = re.compile(
    f"[^{re.escape(FORBIDDEN_REASON_CHARS)}\\x00-\\x1f\\x7f-\\U0010ffff]{{0,{MAX_REASON_BYTES}}}"
)
CHARSETS = frozenset({"utf-8", "gbk", "gb2312"})  # the `_input_charset` values of §1.1

AckStatus = Literal["T", "F", "P"]
DbackStatus = Literal["S", "F", "I", "P"]

# The Alipay error code a gateway answers when a refund request breaks the rule (mapping is (I), §8).
_ARGUMENT = "ILLEGAL_ARGUMENT"
_DETAIL = "DETAIL_DATA_FORMAT_ERROR"
_BATCH_NO = "BATCH_NO_FORMAT_ERROR"
_DATE = "REFUND_DATE_ERROR"

_AMOUNT = AMOUNT_TEXT  # the one amount grammar and trade-number rule: refund_adapter.money
_TRADE_NO = TRADE_NO
_USER_ID = re.compile(r"2088[0-9]{12}")
# (I) Alipay logon ids are e-mail addresses or (possibly masked) mobile numbers; no separator, no "%".
_ACCOUNT = re.compile(r"[0-9A-Za-z._@+*\-]{1,100}")
_CODE = re.compile(r"[0-9A-Za-z_]{1,64}")
_NOTIFY_ID = re.compile(r"[!-~]{1,128}")
# Descriptive text Alipay sends (bank names, times of unknown format): anything but separators and controls.
_FREE_TEXT = re.compile(r"[^\^|$#\x00-\x1f\x7f]{1,128}")
_NAMESPACE = re.compile(r"[0-9A-Z]{0,8}")
_BATCH = re.compile(r"([0-9]{8})([0-9A-Za-z]{3,24})")
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_SUCCESS_NUM = re.compile(r"[0-9]{1,4}")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"\A\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")

_RULE_AMOUNT = AMOUNT_TEXT_RULE
_RULE_TRADE_NO = TRADE_NO_RULE
_RULE_CODE = "must be an Alipay code of 1..64 characters [0-9A-Za-z_]"
_RULE_TEXT = "must be 1..128 characters without ^ | $ # or control characters"

_WIRE_BOOL = {"true": True, "false": False}
_WIRE_DBACK: Mapping[str, str | None] = {"S": "S", "F": "F", "P": "P", "null": None}
_ACK_STATUSES: Mapping[str, AckStatus] = {"T": "T", "F": "F", "P": "P"}
_DBACK_STATUSES: Mapping[str, DbackStatus] = {"S": "S", "F": "F", "I": "I", "P": "P"}

_T = TypeVar("_T")


class AlipayFormatError(ValueError):
    """The one error for protocol input that breaks a rule, so callers catch exactly one thing.

    `code` is the Alipay error a gateway answers when this input arrives in a refund request,
    which lets the simulator reply the way Alipay would without re-deriving the rule.
    """

    def __init__(self, field: str, rule: str, *, code: str = _ARGUMENT) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.code = code


def _match(
    value: object, field: str, pattern: re.Pattern[str], rule: str, code: str = _ARGUMENT
) -> re.Match[str]:
    """Check a token against its whole grammar; a non-str is a broken rule too, never a TypeError."""
    found = pattern.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise AlipayFormatError(field, rule, code=code)
    return found


def _check(value: object, field: str, pattern: re.Pattern[str], rule: str, code: str = _ARGUMENT) -> str:
    """Return the token once it matches its grammar, so validation and use are one expression."""
    return _match(value, field, pattern, rule, code).string


def _codec(charset: str) -> str:
    """Normalise `_input_charset`; byte limits and encodability depend on it."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, TypeError):
        name = ""
    if name not in CHARSETS:
        raise AlipayFormatError("charset", f"must be one of {sorted(CHARSETS)}", code="ILLEGAL_CHARSET")
    return name


# --- money ---------------------------------------------------------------------------------------


def parse_amount(text: str, field: str = "amount", *, strict: bool = True) -> Decimal:
    """Read CNY yuan with one grammar, so floats, exponents and NaN never reach the books.

    strict=False admits 0, for amounts Alipay echoes back (e.g. "80", "0.00").
    """
    value = Decimal(_check(text, field, _AMOUNT, _RULE_AMOUNT, _DETAIL))
    if strict and value == 0:
        raise AlipayFormatError(field, "must be greater than 0", code=_DETAIL)
    return value


def _amount_text(value: Decimal, field: str, *, strict: bool) -> str:
    """Write an amount with exactly 2 decimals; `parse_amount` re-checks sign and size in one place."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise AlipayFormatError(field, "must be a finite Decimal", code=_DETAIL)
    whole, _, fraction = f"{value:f}".partition(".")
    if fraction[2:].strip("0"):
        raise AlipayFormatError(field, "must have at most 2 decimals", code=_DETAIL)
    text = f"{whole}.{fraction[:2]:0<2}"
    parse_amount(text, field, strict=strict)
    return text


def format_amount(value: Decimal, field: str = "amount") -> str:
    """Write a refund amount (> 0) as Alipay's examples do: "5.00"."""
    return _amount_text(value, field, strict=True)


# --- time ----------------------------------------------------------------------------------------


def _in_beijing(moment: datetime, field: str) -> datetime:
    """Alipay's clock is Beijing time; a naive datetime would silently mean the server's zone."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise AlipayFormatError(field, "must be a timezone-aware datetime", code=_DATE)
    try:
        return moment.astimezone(BEIJING)
    except OverflowError:
        raise AlipayFormatError(field, "is out of range", code=_DATE) from None


def beijing_now(now: datetime | None = None) -> datetime:
    """The current moment on Alipay's clock; pass `now` to keep callers testable."""
    return _in_beijing(datetime.now(UTC) if now is None else now, "now")


def format_alipay_time(moment: datetime) -> str:
    """Write "yyyy-MM-dd HH:mm:ss" in Beijing time, 24-hour (sub-seconds are dropped)."""
    local = _in_beijing(moment, "moment")
    return local.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def parse_alipay_time(text: str, field: str = "refund_date") -> datetime:
    """Read "yyyy-MM-dd HH:mm:ss" as an aware Beijing datetime."""
    found = _match(text, field, _TIME, "must be yyyy-MM-dd HH:mm:ss (24-hour)", _DATE)
    try:
        return datetime(*(int(part) for part in found.groups()), tzinfo=BEIJING)
    except ValueError:
        raise AlipayFormatError(field, "is not a real date and time", code=_DATE) from None


# --- batch_no ------------------------------------------------------------------------------------


def _plain_date(day: date, field: str) -> date:
    """A datetime here is almost always a zone mistake (take `beijing_now().date()`), so refuse it."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise AlipayFormatError(field, "must be a date (not a datetime)", code=_BATCH_NO)
    return day


def _base36(number: int) -> str:
    """Uppercase base 36: the densest encoding the serial's [0-9A-Z] allows."""
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
    return digits


def batch_serial(namespace: str, batch_id: int) -> str:
    """Derive the serial from the batch's own id so a retry can never mint a second batch_no.

    The namespace (an install id) keeps two databases sharing one partner apart. Installs must use
    namespaces of one length: "A" + "1000001" equals "A1" + "000001".
    """
    _check(namespace, "namespace", _NAMESPACE, "must be 0..8 characters [0-9A-Z]", _BATCH_NO)
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or batch_id < 1:
        raise AlipayFormatError("batch_id", "must be an int >= 1", code=_BATCH_NO)
    serial = namespace + _base36(batch_id).rjust(6, "0")
    if len(serial) > 24:
        raise AlipayFormatError("batch_id", f"is too large for namespace {namespace!r}", code=_BATCH_NO)
    return serial


def _batch_no_date(batch_no: str, field: str) -> date:
    """Check the §1.2 grammar and return the date prefix."""
    found = _match(batch_no, field, _BATCH, "must be yyyyMMdd + 3..24 characters [0-9A-Za-z]", _BATCH_NO)
    day, serial = found.groups()
    if not serial.strip("0"):
        raise AlipayFormatError(field, "serial must not be all zeros", code=_BATCH_NO)
    try:
        return date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        raise AlipayFormatError(field, "does not start with a real date", code=_BATCH_NO) from None


def validate_batch_no(batch_no: str, *, today: date | None = None) -> str:
    """Return batch_no once valid; with `today` (Beijing) also require Alipay's same-day rule."""
    day = _batch_no_date(batch_no, "batch_no")
    if today is not None and day != _plain_date(today, "today"):
        raise AlipayFormatError("batch_no", f"date {day} is not today ({today}) in Beijing", code=_BATCH_NO)
    return batch_no


def batch_no_date(batch_no: str) -> date:
    """The Beijing day a batch was opened on, read back from its number."""
    return _batch_no_date(batch_no, "batch_no")


def build_batch_no(day: date, namespace: str, batch_id: int) -> str:
    """yyyyMMdd (the Beijing day) + `batch_serial`."""
    day8 = _plain_date(day, "day").isoformat().replace("-", "")
    return validate_batch_no(day8 + batch_serial(namespace, batch_id))


# --- detail_data (§1.4) --------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeRefund:
    """原付款支付宝交易号^退款总金额^退款理由."""

    trade_no: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class RoyaltyRefund:
    """A royalty (分润) to pull back: from the account that received it, to the one that paid it."""

    out_account: str
    out_user_id: str
    in_account: str
    in_user_id: str
    amount: Decimal
    reason: str


@dataclass(frozen=True)
class SubTradeRefund:
    """退子交易: the part after `$$`."""

    amount: Decimal
    reason: str


@dataclass(frozen=True)
class RefundDetail:
    """One `#`-separated detail: a trade refund, optional royalties, optional sub-trade."""

    trade: TradeRefund
    royalties: tuple[RoyaltyRefund, ...] = ()
    sub_trade: SubTradeRefund | None = None


def _is_control(char: str) -> bool:
    """Controls, invisible format characters and line separators have no place in a one-line reason."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def clean_reason(text: str, charset: str = "utf-8") -> str:
    """Make any merchant text a valid reason, so a refund is never blocked by its memo.

    Drops ^ | $ # and controls, writes "?" for what the charset cannot encode, and keeps the longest
    prefix of whole characters that fits in 256 bytes.
    """
    codec = _codec(charset)
    if _PLAIN_REASON.fullmatch(text):
        return text  # the common case, kept as it is without looking at each character
    kept: list[str] = []
    size = 0
    for char in text:
        if char in FORBIDDEN_REASON_CHARS or _is_control(char):
            continue
        try:
            width = len(char.encode(codec))
        except UnicodeEncodeError:
            char, width = "?", 1
        if size + width > MAX_REASON_BYTES:
            break
        kept.append(char)
        size += width
    return "".join(kept)


def validate_reason(text: str, charset: str = "utf-8", field: str = "reason") -> str:
    """Return the reason once it obeys §1.4: no separators or controls, encodable, <= 256 bytes."""
    codec = _codec(charset)
    if not isinstance(text, str):
        raise AlipayFormatError(field, "must be a string", code=_DETAIL)
    bad = next((char for char in text if char in FORBIDDEN_REASON_CHARS or _is_control(char)), None)
    if bad is not None:
        raise AlipayFormatError(field, f"must not contain {bad!r} (^ | $ # or a control)", code=_DETAIL)
    try:
        size = len(text.encode(codec))
    except UnicodeEncodeError:
        raise AlipayFormatError(
            field, f"cannot be encoded in {codec}", code="SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT"
        ) from None
    if size > MAX_REASON_BYTES:
        raise AlipayFormatError(
            field,
            f"is {size} bytes in {codec}; at most {MAX_REASON_BYTES} bytes",
            code="BATCH_MEMO_LENGTH_EXCEED_LIMIT",
        )
    return text


def _check_count(count: int) -> None:
    """§1.3: a batch holds 1..1000 details."""
    if count < 1:
        raise AlipayFormatError("detail_data", "needs at least one detail", code=_DETAIL)
    if count > MAX_DETAILS:
        raise AlipayFormatError(
            "batch_num", f"{count} details; at most {MAX_DETAILS}", code="BATCH_NUM_EXCEED_LIMIT"
        )


def _check_party(account: str, user_id: str, field: str, code: str) -> None:
    """A royalty or fee party is named by an account, a 2088 user id, or both; never by neither."""
    if account == "" and user_id == "":
        raise AlipayFormatError(field, "needs an account or a user id", code=code)
    if account != "":
        _check(account, f"{field}_account", _ACCOUNT, "must be an Alipay account (e-mail or mobile)", code)
    if user_id != "":
        _check(user_id, f"{field}_user_id", _USER_ID, "must be 16 digits starting 2088", code)


def _validate_detail(detail: RefundDetail, codec: str, field: str) -> None:
    """Every rule of one detail except amounts, which are checked where they are read or written."""
    _check(detail.trade.trade_no, f"{field}.trade_no", _TRADE_NO, _RULE_TRADE_NO, _DETAIL)
    validate_reason(detail.trade.reason, codec, f"{field}.reason")
    pairs: set[tuple[str, str, str, str]] = set()
    for index, royalty in enumerate(detail.royalties):
        where = f"{field}.royalties[{index}]"
        _check_party(royalty.out_account, royalty.out_user_id, f"{where}.out", _DETAIL)
        _check_party(royalty.in_account, royalty.in_user_id, f"{where}.in", _DETAIL)
        validate_reason(royalty.reason, codec, f"{where}.reason")
        pair = (royalty.out_account, royalty.out_user_id, royalty.in_account, royalty.in_user_id)
        if pair in pairs:
            raise AlipayFormatError(
                where, "duplicate royalty (out, in) pair in this detail", code="DUBL_ROYALTY_IN_DETAIL"
            )
        pairs.add(pair)
    if detail.sub_trade is not None:
        validate_reason(detail.sub_trade.reason, codec, f"{field}.sub_trade.reason")


def _validate_details(details: Sequence[RefundDetail], codec: str) -> None:
    """Batch-level rules: the count, and each trade_no once (Alipay wants amounts merged per trade)."""
    _check_count(len(details))
    seen: set[str] = set()
    for index, detail in enumerate(details):
        field = f"detail_data[{index}]"
        _validate_detail(detail, codec, field)
        if detail.trade.trade_no in seen:
            raise AlipayFormatError(
                f"{field}.trade_no", "duplicate trade_no in the batch", code="DUBL_TRADE_NO_IN_SAME_BATCH"
            )
        seen.add(detail.trade.trade_no)


def _join_items(items: Sequence[_T], field: str, render: Callable[[_T, str], str]) -> str:
    """Join `#`-separated items, naming each one's position in errors."""
    if len(items) == 0:
        raise AlipayFormatError(field, "needs at least one item")
    return "#".join(render(item, f"{field}[{index}]") for index, item in enumerate(items))


def _split_items(text: str, field: str, parse: Callable[[str, str], _T]) -> list[_T]:
    """Split `#`-separated items, naming each one's position in errors."""
    if not isinstance(text, str) or text == "":
        raise AlipayFormatError(field, "is required", code=_DETAIL)
    return [parse(chunk, f"{field}[{index}]") for index, chunk in enumerate(text.split("#"))]


def _fields(text: str, field: str, *counts: int) -> list[str]:
    """Split one `^` record and insist on its field count."""
    parts = text.split("^")
    if len(parts) not in counts:
        expected = " or ".join(map(str, counts))
        raise AlipayFormatError(field, f"needs {expected} ^-separated fields, got {len(parts)}", code=_DETAIL)
    return parts


def _split_sub_trade(text: str, field: str) -> tuple[str, str | None]:
    """Split off the optional `$$` sub-trade part (at most one)."""
    head, *rest = text.split("$$")
    if len(rest) > 1:
        raise AlipayFormatError(field, "has more than one $$ part", code=_DETAIL)
    return head, rest[0] if rest else None


def _detail_text(detail: RefundDetail, field: str) -> str:
    """Write one validated detail."""
    trade = detail.trade
    parts = [f"{trade.trade_no}^{format_amount(trade.amount, f'{field}.amount')}^{trade.reason}"]
    for index, royalty in enumerate(detail.royalties):
        amount = format_amount(royalty.amount, f"{field}.royalties[{index}].amount")
        parties = f"{royalty.out_account}^{royalty.out_user_id}^{royalty.in_account}^{royalty.in_user_id}"
        parts.append(f"{parties}^{amount}^{royalty.reason}")
    text = "|".join(parts)
    if detail.sub_trade is not None:
        amount = format_amount(detail.sub_trade.amount, f"{field}.sub_trade.amount")
        text += f"$${amount}^{detail.sub_trade.reason}"
    return text


def _decode_detail(text: str, field: str) -> RefundDetail:
    """Read one detail's tokens; `_validate_details` then applies the rules shared with encoding."""
    head, sub_text = _split_sub_trade(text, field)
    trade_text, *royalty_texts = head.split("|")
    trade_no, amount, reason = _fields(trade_text, field, 3)
    royalties = []
    for index, royalty_text in enumerate(royalty_texts):
        where = f"{field}.royalties[{index}]"
        out_account, out_user_id, in_account, in_user_id, royalty_amount, royalty_reason = _fields(
            royalty_text, where, 6
        )
        royalties.append(
            RoyaltyRefund(
                out_account,
                out_user_id,
                in_account,
                in_user_id,
                parse_amount(royalty_amount, f"{where}.amount"),
                royalty_reason,
            )
        )
    sub_trade = None
    if sub_text is not None:
        sub_amount, sub_reason = _fields(sub_text, f"{field}.sub_trade", 2)
        sub_trade = SubTradeRefund(parse_amount(sub_amount, f"{field}.sub_trade.amount"), sub_reason)
    trade = TradeRefund(trade_no, parse_amount(amount, f"{field}.amount"), reason)
    return RefundDetail(trade, tuple(royalties), sub_trade)


def refused_details(details: Sequence[RefundDetail], charset: str = "utf-8") -> dict[int, AlipayFormatError]:
    """Which details `encode_detail_data` refuses, by index, so that one bad detail can leave its batch instead
    of holding the others: each detail checked alone, then each repeat of a trade_no after its first."""
    codec = _codec(charset)
    refused: dict[int, AlipayFormatError] = {}
    seen: set[str] = set()
    for index, detail in enumerate(details):
        field = f"detail_data[{index}]"
        try:
            _validate_detail(detail, codec, field)
            _detail_text(detail, field)
        except AlipayFormatError as exc:
            refused[index] = exc
            continue
        if detail.trade.trade_no in seen:
            refused[index] = AlipayFormatError(
                f"{field}.trade_no", "duplicate trade_no in the batch", code="DUBL_TRADE_NO_IN_SAME_BATCH"
            )
        seen.add(detail.trade.trade_no)
    return refused


def encode_detail_data(details: Sequence[RefundDetail], charset: str = "utf-8") -> str:
    """Write `detail_data`, refusing anything Alipay would reject synchronously for the whole batch."""
    _validate_details(details, _codec(charset))
    return _join_items(details, "detail_data", _detail_text)


def decode_detail_data(text: str, charset: str = "utf-8") -> list[RefundDetail]:
    """Read `detail_data` under the same rules as `encode_detail_data` (amounts strict)."""
    codec = _codec(charset)
    details = _split_items(text, "detail_data", _decode_detail)
    _validate_details(details, codec)
    return details


def batch_num(details: Sequence[RefundDetail]) -> str:
    """`batch_num` is the detail count, "#" count + 1 (§1.3)."""
    _check_count(len(details))
    return str(len(details))


# --- result_details (§4.3, §4.4, §6) -------------------------------------------------------------


@dataclass(frozen=True)
class TradeResult:
    """交易号^退款金额^处理结果[^是否充退^充退处理结果]; dback_result None is written "null"."""

    trade_no: str
    amount: Decimal
    code: str
    is_dback: bool | None = None
    dback_result: str | None = None


@dataclass(frozen=True)
class ChargeResult:
    """退费账号^退费账户ID^退费金额^处理结果: the fee refund after the first `$`."""

    account: str
    user_id: str
    amount: Decimal
    code: str


@dataclass(frozen=True)
class RoyaltyResult:
    """The result of one royalty refund, echoing its parties."""

    out_account: str
    out_user_id: str
    in_account: str
    in_user_id: str
    amount: Decimal
    code: str


@dataclass(frozen=True)
class SubTradeResult:
    """退子交易金额^子交易可退款金额^处理结果码."""

    amount: Decimal
    refundable_amount: Decimal
    code: str


@dataclass(frozen=True)
class ResultItem:
    """The result of one request detail."""

    trade: TradeResult
    charge: ChargeResult | None = None
    royalties: tuple[RoyaltyResult, ...] = ()
    sub_trade: SubTradeResult | None = None

    @property
    def succeeded(self) -> bool:
        """The trade refund decides; `success_num` counts exactly these."""
        return self.trade.code == "SUCCESS"


def _validate_item(item: ResultItem, field: str) -> None:
    """Every token rule of one result item; amounts are checked where they are read or written."""
    trade = item.trade
    _check(trade.trade_no, f"{field}.trade_no", _TRADE_NO, _RULE_TRADE_NO)
    _check(trade.code, f"{field}.code", _CODE, _RULE_CODE)
    if trade.is_dback is None and trade.dback_result is not None:
        raise AlipayFormatError(f"{field}.dback_result", "needs is_dback")
    if not isinstance(trade.is_dback, bool | None) or trade.dback_result not in _WIRE_DBACK.values():
        raise AlipayFormatError(f"{field}.is_dback", "must be None, or a bool with dback_result S|F|P|None")
    if item.charge is not None:
        _check_party(item.charge.account, item.charge.user_id, f"{field}.charge", _ARGUMENT)
        _check(item.charge.code, f"{field}.charge.code", _CODE, _RULE_CODE)
    for index, royalty in enumerate(item.royalties):
        where = f"{field}.royalties[{index}]"
        _check_party(royalty.out_account, royalty.out_user_id, f"{where}.out", _ARGUMENT)
        _check_party(royalty.in_account, royalty.in_user_id, f"{where}.in", _ARGUMENT)
        _check(royalty.code, f"{where}.code", _CODE, _RULE_CODE)
    if item.sub_trade is not None:
        _check(item.sub_trade.code, f"{field}.sub_trade.code", _CODE, _RULE_CODE)


def _echo(value: Decimal, field: str) -> str:
    """Amounts in results may be 0 (nothing refunded)."""
    return _amount_text(value, field, strict=False)


def _read_echo(text: str, field: str) -> Decimal:
    """Alipay echoes amounts as sent ("80"), so read them leniently."""
    return parse_amount(text, field, strict=False)


def _item_text(item: ResultItem, field: str) -> str:
    """Write one result item in the order the parser splits it back."""
    _validate_item(item, field)
    trade = item.trade
    text = f"{trade.trade_no}^{_echo(trade.amount, f'{field}.amount')}^{trade.code}"
    if trade.is_dback is not None:
        text += f"^{'true' if trade.is_dback else 'false'}^{trade.dback_result or 'null'}"
    if item.charge is not None:
        charge = item.charge
        amount = _echo(charge.amount, f"{field}.charge.amount")
        text += f"${charge.account}^{charge.user_id}^{amount}^{charge.code}"
    for index, royalty in enumerate(item.royalties):
        amount = _echo(royalty.amount, f"{field}.royalties[{index}].amount")
        parties = f"{royalty.out_account}^{royalty.out_user_id}^{royalty.in_account}^{royalty.in_user_id}"
        text += f"|{parties}^{amount}^{royalty.code}"
    if item.sub_trade is not None:
        sub = item.sub_trade
        amounts = f"{_echo(sub.amount, f'{field}.sub_trade.amount')}^" + _echo(
            sub.refundable_amount, f"{field}.sub_trade.refundable_amount"
        )
        text += f"$${amounts}^{sub.code}"
    return text


def _decode_trade_result(text: str, field: str) -> TradeResult:
    """3 fields, or 5 with 是否充退 and 充退处理结果 (§4.4)."""
    trade_no, amount, code, *dback = _fields(text, field, 3, 5)
    is_dback = dback_result = None
    if dback:
        if dback[0] not in _WIRE_BOOL or dback[1] not in _WIRE_DBACK:
            raise AlipayFormatError(f"{field}.is_dback", "must be true|false then S|F|P|null")
        is_dback, dback_result = _WIRE_BOOL[dback[0]], _WIRE_DBACK[dback[1]]
    return TradeResult(trade_no, _read_echo(amount, f"{field}.amount"), code, is_dback, dback_result)


def _decode_item(text: str, field: str) -> ResultItem:
    """Split `$$`, then `|`, then the first `$` (§4.3); never a regex character class."""
    head, sub_text = _split_sub_trade(text, field)
    first, *royalty_texts = head.split("|")
    trade_text, dollar, charge_text = first.partition("$")
    charge = None
    if dollar:
        account, user_id, amount, code = _fields(charge_text, f"{field}.charge", 4)
        charge = ChargeResult(account, user_id, _read_echo(amount, f"{field}.charge.amount"), code)
    royalties = []
    for index, royalty_text in enumerate(royalty_texts):
        where = f"{field}.royalties[{index}]"
        out_account, out_user_id, in_account, in_user_id, amount, code = _fields(royalty_text, where, 6)
        royalties.append(
            RoyaltyResult(
                out_account, out_user_id, in_account, in_user_id, _read_echo(amount, f"{where}.amount"), code
            )
        )
    sub_trade = None
    if sub_text is not None:
        amount, refundable, code = _fields(sub_text, f"{field}.sub_trade", 3)
        sub_trade = SubTradeResult(
            _read_echo(amount, f"{field}.sub_trade.amount"),
            _read_echo(refundable, f"{field}.sub_trade.refundable_amount"),
            code,
        )
    item = ResultItem(_decode_trade_result(trade_text, field), charge, tuple(royalties), sub_trade)
    _validate_item(item, field)
    return item


def encode_result_details(items: Sequence[ResultItem]) -> str:
    """Write a notify's `result_details`, one item per request detail."""
    return _join_items(items, "result_details", _item_text)


def decode_result_details(text: str) -> list[ResultItem]:
    """Read a notify's `result_details`."""
    return _split_items(text, "result_details", _decode_item)


@dataclass(frozen=True)
class QueryItem:
    """A query result item: the batch it belongs to, then the same shape as a notify item."""

    batch_no: str
    result: ResultItem


def _query_item_text(item: QueryItem, field: str) -> str:
    """batch_no^ + a result item."""
    _batch_no_date(item.batch_no, f"{field}.batch_no")
    return f"{item.batch_no}^{_item_text(item.result, field)}"


def _decode_query_item(text: str, field: str) -> QueryItem:
    """Split off batch_no at the first `^`, then read a result item."""
    batch_no, _, rest = text.partition("^")
    _batch_no_date(batch_no, f"{field}.batch_no")
    return QueryItem(batch_no, _decode_item(rest, field))


def encode_query_result_details(items: Sequence[QueryItem]) -> str:
    """Write `refund_fastpay_query`'s `result_details` (§6)."""
    return _join_items(items, "result_details", _query_item_text)


def decode_query_result_details(text: str) -> list[QueryItem]:
    """Read `refund_fastpay_query`'s `result_details` (§6)."""
    return _split_items(text, "result_details", _decode_query_item)


@dataclass(frozen=True)
class UnfreezedDetail:
    """解冻结订单号^冻结订单号^解冻结金额^交易号^处理时间^状态^描述码 (§4.2); processed_at kept as sent."""

    unfreeze_order_no: str
    freeze_order_no: str
    amount: Decimal
    trade_no: str
    processed_at: str
    status: str
    code: str


def _validate_unfreezed(item: UnfreezedDetail, field: str) -> None:
    """Token rules of one unfreeze record (order numbers are (I): alphanumeric like trade numbers)."""
    for name in ("unfreeze_order_no", "freeze_order_no", "trade_no"):
        _check(getattr(item, name), f"{field}.{name}", _TRADE_NO, _RULE_TRADE_NO)
    _check(item.processed_at, f"{field}.processed_at", _FREE_TEXT, _RULE_TEXT)
    _check(item.status, f"{field}.status", _CODE, _RULE_CODE)
    _check(item.code, f"{field}.code", _CODE, _RULE_CODE)


def _unfreezed_text(item: UnfreezedDetail, field: str) -> str:
    """Write one validated unfreeze record."""
    _validate_unfreezed(item, field)
    amount = _echo(item.amount, f"{field}.amount")
    orders = f"{item.unfreeze_order_no}^{item.freeze_order_no}"
    return f"{orders}^{amount}^{item.trade_no}^{item.processed_at}^{item.status}^{item.code}"


def _decode_unfreezed(text: str, field: str) -> UnfreezedDetail:
    """Read one unfreeze record of exactly 7 fields."""
    unfreeze, freeze, amount, trade_no, processed_at, status, code = _fields(text, field, 7)
    amount_value = _read_echo(amount, f"{field}.amount")
    item = UnfreezedDetail(unfreeze, freeze, amount_value, trade_no, processed_at, status, code)
    _validate_unfreezed(item, field)
    return item


def encode_unfreezed_details(items: Sequence[UnfreezedDetail]) -> str:
    """Write `unfreezed_details` (records joined by `#`, (I))."""
    return _join_items(items, "unfreezed_details", _unfreezed_text)


def decode_unfreezed_details(text: str) -> list[UnfreezedDetail]:
    """Read `unfreezed_details`."""
    return _split_items(text, "unfreezed_details", _decode_unfreezed)


# --- XML (§3.1, §6) ------------------------------------------------------------------------------


def _parse_xml(body: bytes | str, field: str) -> Element:
    """Parse Alipay's XML safely; ElementTree refuses the multi-byte GBK declaration, so decode first."""
    if isinstance(body, bytes):
        declared = _DECLARED_ENCODING.match(body)
        try:
            body = body.decode(_codec(declared[1].decode() if declared else "utf-8"))
        except (AlipayFormatError, UnicodeDecodeError):
            raise AlipayFormatError(field, "is not in its declared encoding (utf-8, gbk, gb2312)") from None
    if not isinstance(body, str):
        raise AlipayFormatError(field, "must be bytes or str")
    try:
        return SafeElementTree.fromstring(_XML_DECLARATION.sub("", body.lstrip("\ufeff"), count=1))
    except (ParseError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
        raise AlipayFormatError(field, f"is not acceptable XML ({exc})") from None


def _child_text(root: Element, tag: str, field: str) -> str | None:
    """The stripped text of an optional, non-repeated child."""
    children = root.findall(tag)
    if len(children) > 1:
        raise AlipayFormatError(field, f"<{tag}> appears {len(children)} times")
    return (children[0].text or "").strip() if children else None


def _alipay_root(body: bytes | str, field: str) -> Element:
    """Both XML answers are an <alipay> document."""
    root = _parse_xml(body, field)
    if root.tag != "alipay":
        raise AlipayFormatError(field, f"root element is <{root.tag}>, not <alipay>")
    return root


@dataclass(frozen=True)
class Ack:
    """The synchronous answer: T accepted (the notify decides), F refused with `error`, P processing."""

    status: AckStatus
    error: str | None = None


def _ack(status: str | None, error: str | None) -> Ack:
    """An error code comes with F and only with F; anything else is not an answer we understand."""
    if status not in _ACK_STATUSES:
        raise AlipayFormatError("ack", "is_success must be T, F or P")
    if (status == "F") != (error is not None):
        raise AlipayFormatError("ack", "an <error> code comes with F and only with F")
    if error is not None:
        _check(error, "ack", _CODE, f"error {_RULE_CODE}")
    return Ack(_ACK_STATUSES[status], error)


def render_ack(status: str, error: str | None = None) -> bytes:
    """The GBK XML Alipay answers a refund request with (for the simulated gateway)."""
    ack = _ack(status, error)
    error_xml = f"<error>{ack.error}</error>" if ack.error is not None else ""
    body = f"<alipay><is_success>{ack.status}</is_success>{error_xml}</alipay>"
    return f'<?xml version="1.0" encoding="GBK"?>{body}'.encode("gbk")


def parse_ack(body: bytes) -> Ack:
    """Read the synchronous answer; anything unexpected is an error, to be resolved by the query."""
    root = _alipay_root(body, "ack")
    return _ack(_child_text(root, "is_success", "ack"), _child_text(root, "error", "ack"))


# --- refund query answer (§6) --------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResponse:
    """`refund_fastpay_query`'s answer: T with items, or F with an error code."""

    is_success: bool
    items: tuple[QueryItem, ...] = ()
    error_code: str | None = None


def render_query_response(response: QueryResponse) -> str:
    """The plain-text answer of §6, values raw (they contain neither `&` nor `%`)."""
    if response.is_success is True and response.error_code is None:
        if not response.items:
            return "is_success=T"
        return f"is_success=T&result_details={encode_query_result_details(response.items)}"
    if response.is_success is False and not response.items:
        return f"is_success=F&error_code={_check(response.error_code, 'error_code', _CODE, _RULE_CODE)}"
    raise AlipayFormatError("query", "is_success T takes items, F takes an error_code and no items")


def _is_xml(body: bytes | str) -> bool:
    """Some eras answered the query in XML; sniff the first character."""
    if isinstance(body, bytes):
        return body.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"<")
    return isinstance(body, str) and body.lstrip("\ufeff \t\r\n").startswith("<")


def _plain_fields(body: bytes | str, codec: str) -> dict[str, str]:
    """Split `k=v&k=v`; values may be raw or percent-encoded in the charset."""
    try:
        text = body.decode(codec) if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise AlipayFormatError("query", f"is not {codec} text") from None
    if not isinstance(text, str):
        raise AlipayFormatError("query", "must be bytes or str")
    fields: dict[str, str] = {}
    for pair in text.strip().split("&"):
        key, equals, value = pair.partition("=")
        if not equals or key in fields:
            raise AlipayFormatError("query", f"{pair[:40]!r} is not a new key=value pair")
        try:
            fields[key] = unquote(value, encoding=codec, errors="strict")
        except UnicodeDecodeError:
            raise AlipayFormatError(f"query.{key}", f"is not percent-encoded {codec}") from None
    return fields


def _xml_fields(body: bytes | str) -> dict[str, str]:
    """<alipay><is_success/><result_details/>|<error/></alipay> as the plain-text keys."""
    root = _alipay_root(body, "query")
    tags = {"is_success": "is_success", "result_details": "result_details", "error_code": "error"}
    fields = {key: _child_text(root, tag, "query") for key, tag in tags.items()}
    return {key: value for key, value in fields.items() if value is not None}


def parse_query_response(body: bytes | str, charset: str = "utf-8") -> QueryResponse:
    """Read `refund_fastpay_query`'s answer, plain text or XML."""
    codec = _codec(charset)
    fields = _xml_fields(body) if _is_xml(body) else _plain_fields(body, codec)
    status = fields.get("is_success")
    if status == "T":
        details = fields.get("result_details", "")
        return QueryResponse(True, tuple(decode_query_result_details(details)) if details else ())
    if status == "F":
        code = _check(fields.get("error_code"), "error_code", _CODE, _RULE_CODE)
        return QueryResponse(False, error_code=code)
    raise AlipayFormatError("is_success", "must be T or F")


# --- error codes (§3.2) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    """What an Alipay code means, where it shows up (S sync ack, D per detail), and whether it is final."""

    code: str
    meaning: str
    where: frozenset[str]
    final: bool

    @property
    def one_detail_may_cause(self) -> bool:
        """Whether a synchronous refusal with this code may come from one detail alone (see _DETAIL_SYNC)."""
        return self.final and (self.code in _DETAIL_SYNC or "D" in self.where)


_S = frozenset({"S"})
_D = frozenset({"D"})
_SD = frozenset({"S", "D"})

# (I) The one place that decides retries. Not final: a transient Alipay state, so the same request
# (sync: same batch_no, same day) or the same refund in a later batch (per detail) can succeed, or,
# for DUPLICATE_BATCH_NO and REFUND_NOT_EXIST, the batch is to be resolved by notify/query, not failed.
# Everything else is final: repeating the identical request gets the identical answer (bad data, no
# contract, wrong key, insufficient balance...) and a person must act; failing beats retrying blindly.
_NOT_FINAL = frozenset(
    {
        "SYSTEM_ERROR",
        "SESSION_TIMEOUT",
        "ANTI_PHISHING_KEY_TIMEOUT",
        "BATCH_REFUND_LOCK_ERROR",
        "DUPLICATE_BATCH_NO",
        "REFUND_NOT_EXIST",
    }
)

# (I) The synchronous refusals one detail can cause: the detail_data rules of §1.4 (a detail's format, its
# reason's length or charset, a royalty or trade_no repeated), and any per-detail (D) code, since which codes
# Alipay answers synchronously is left open (§12). The answer never says which detail: the engine finds it by
# splitting the batch. Any other final code (a bad signature, a seller not allowed...) refuses the whole batch.
_DETAIL_SYNC = frozenset(
    {
        "DETAIL_DATA_FORMAT_ERROR",
        "SINGLE_DETAIL_DATA_EXCEED_LIMIT",
        "SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT",
        "BATCH_MEMO_LENGTH_EXCEED_LIMIT",
        "DUBL_ROYALTY_IN_DETAIL",
        "DUBL_TRADE_NO_IN_SAME_BATCH",
    }
)

_ERROR_TABLE: tuple[tuple[str, str, frozenset[str]], ...] = (
    # gateway / common
    ("ILLEGAL_SIGN", "签名不正确", _S),
    ("ILLEGAL_DYN_MD5_KEY", "动态密钥信息错误", _S),
    ("ILLEGAL_ENCRYPT", "加密不正确", _S),
    ("ILLEGAL_ARGUMENT", "参数不正确", _S),
    ("ILLEGAL_SERVICE", "Service参数不正确", _S),
    ("ILLEGAL_USER", "用户ID不正确", _S),
    ("ILLEGAL_PARTNER", "合作伙伴ID不正确", _S),
    ("ILLEGAL_EXTERFACE", "接口配置不正确", _S),
    ("ILLEGAL_PARTNER_EXTERFACE", "合作伙伴接口信息不正确", _S),
    ("ILLEGAL_SECURITY_PROFILE", "未找到匹配的密钥配置", _S),
    ("ILLEGAL_AGENT", "代理ID不正确", _S),
    ("ILLEGAL_SIGN_TYPE", "签名类型不正确", _S),
    ("ILLEGAL_CHARSET", "字符集不合法", _S),
    ("ILLEGAL_CLIENT_IP", "客户端IP地址无权访问服务", _S),
    ("HAS_NO_PRIVILEGE", "无权访问", _S),
    ("SESSION_TIMEOUT", "session超时", _S),
    ("ILLEGAL_DIGEST_TYPE", "摘要类型不正确", _S),
    ("ILLEGAL_DIGEST", "文件摘要不正确", _S),
    ("ILLEGAL_FILE_FORMAT", "文件格式不正确", _S),
    ("ILLEGAL_TARGET_SERVICE", "错误的target_service", _S),
    ("ILLEGAL_ACCESS_SWITCH_SYSTEM", "partner不允许访问该类型的系统", _S),
    ("ILLEGAL_ENCODING", "不支持该编码类型", _S),
    ("EXTERFACE_IS_CLOSED", "接口已关闭", _S),
    ("ILLEGAL_REQUEST_REFERER", "防钓鱼检查相关", _S),
    ("ILLEGAL_ANTI_PHISHING_KEY", "防钓鱼检查相关", _S),
    ("ANTI_PHISHING_KEY_TIMEOUT", "防钓鱼检查相关", _S),
    ("ILLEGAL_EXTER_INVOKE_IP", "防钓鱼检查相关", _S),
    # business
    ("BATCH_NUM_EXCEED_LIMIT", "总笔数大于1000", _S),
    ("REFUND_DATE_ERROR", "错误的退款时间", _S),
    ("BATCH_NUM_ERROR", "传入的总笔数格式错误", _S),
    ("BATCH_NUM_NOT_EQUAL_TOTAL", "传入的退款条数不等于数据集解析出的退款条数", _S),
    ("SINGLE_DETAIL_DATA_EXCEED_LIMIT", "单笔退款明细超出限制", _S),
    ("DUBL_TRADE_NO_IN_SAME_BATCH", "同一批退款中存在两条相同的退款记录", _S),
    ("DUBL_ROYALTY_IN_DETAIL", "同一条明细中存在两条转入转出账户相同的分润信息", _S),
    ("DUPLICATE_BATCH_NO", "重复的批次号", _S),
    ("BATCH_NO_FORMAT_ERROR", "批次号格式错误", _S),
    ("RESULT_BATCH_NO_FORMAT_ERROR", "批次号格式错误", _S),
    ("DETAIL_DATA_FORMAT_ERROR", "数据集参数格式错误", _S),
    ("SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT", "单条数据集编码集不支持", _S),
    ("INVALID_CHARACTER_SET", "字符集无效", _S),
    ("BATCH_MEMO_LENGTH_EXCEED_LIMIT", "备注长度超过256字节", _S),
    ("SELLER_INFO_NOT_EXIST", "卖家信息不存在", _S),
    ("SELLER_STATUS_NOT_ALLOW", "卖家状态不正常", _S),
    ("PARTNER_NOT_SIGN_PROTOCOL", "平台商未签署协议", _S),
    ("SELLER_NOT_SIGN_PROTOCOL", "卖家未签署协议", _S),
    ("ACCOUNT_NOT_EXISTS", "账号不存在", _D),
    ("EMAIL_USERID_NOT_MATCH", "Email和用户ID不匹配", _D),
    ("CA_USER_NOT_USE_CA", "数字证书用户但未使用数字证书登录", _S),
    ("BATCH_REFUND_LOCK_ERROR", "同一时间不允许进行多笔并发退款", _D),
    ("NOT_THIS_SELLER_TRADE", "不是当前卖家的交易", _D),
    ("NOT_THIS_PARTNERS_TRADE", "退款明细非本合作伙伴的交易", _D),
    ("TRADE_NOT_EXISTS", "交易不存在", _D),
    ("TRADE_STATUS_ERROR", "交易状态不允许退款", _D),
    ("TRADE_HAS_CLOSED", "交易已关闭，不允许退款", _D),
    ("TRADE_HAS_FINISHED", "交易已结束，不允许退款", _D),
    ("WHOLE_DETAIL_FORBID_REFUND", "整条退款明细都禁止退款", _D),
    ("TRADE_PRODUCT_TYPE_NOT_ALLOW_REFUND", "交易类型不允许退交易", _D),
    ("REFUND_AMOUNT_NOT_VALID", "退款金额不合法", _D),
    ("REFUND_TRADE_FEE_ERROR", "退交易金额不合法", _D),
    ("REASON_TRADE_REFUND_FEE_ERR", "退款金额错误", _D),
    ("REASON_HAS_REFUND_FEE_NOT_MATCH", "已退款金额错误", _D),
    ("REASON_REFUND_AMOUNT_LESS_THAN_COUPON_FEE", "红包无法部分退款", _D),
    ("REFUND_SUBTRADE_FEE_ERROR", "退子交易金额不合法", _D),
    ("REFUND_ROYALTY_FEE_ERROR", "退分润金额不合法", _D),
    ("ROYALTYER_NOT_SIGN_PROTOCOL", "分润方未签署三方协议", _D),
    ("REASON_REFUND_ROYALTY_ERROR", "退分润错误/失败", _D),
    ("DUP_ROYALTY_REFUND_ITEM", "重复的退分润条目", _D),
    ("NO_REFUND_CHARGE_PRIVILEDGE", "没有退收费的权限", _D),
    ("REFUND_CHARGE_FEE_ERROR", "退收费金额不合法", _D),
    ("REFUND_CHARGE_FEE_GREATER_THAN_LIMIT", "退收费金额超过限制", _D),
    ("REASON_REFUND_CHARGE_ERR", "退收费失败", _D),
    ("RESULT_AMOUNT_NOT_VALID", "退收费、退分润或者退款的金额错误", _D),
    ("RESULT_ACCOUNT_NO_NOT_VALID", "账号无效", _D),
    ("RESULT_FACE_AMOUNT_NOT_VALID", "票面价相关（航空）", _D),
    ("NANHANG_REFUND_CHARGE_AMOUNT_ERROR", "票面价相关（航空）", _D),
    ("TXN_RESULT_ACCOUNT_STATUS_NOT_VALID", "卖家账户状态无效或被冻结", _D),
    ("TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH", "卖家账户余额不足", _D),
    ("BUYER_ERROR", "因买家支付宝账户问题不允许退款", _D),
    ("PWD_REFUND_NOT_ALLOW_ROYALTY", "有密接口不允许退分润", _S),
    ("SYSTEM_ERROR", "支付宝系统错误（联系技术支持）", _SD),
    ("BATCH_REFUND_STATUS_ERROR", "退款记录状态错误", _D),
    ("BATCH_REFUND_DATA_ERROR", "批量退款后数据检查错误", _D),
    ("REFUND_TRADE_FAILED", "不存在退交易，但是退收费和退分润失败", _D),
    ("REFUND_FAIL", "退款失败（仅意外数据恢复时出现）", _D),
    # refund_fastpay_query's error_code (§6)
    ("REFUND_NOT_EXIST", "退款记录不存在（查询）", _S),
)

ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(
    {code: ErrorCode(code, meaning, where, code not in _NOT_FINAL) for code, meaning, where in _ERROR_TABLE}
)


def error_code(code: str) -> ErrorCode:
    """Look a code up; an unknown one is final, since retrying what we do not understand is a guess."""
    return ERROR_CODES.get(code) or ErrorCode(code, "unknown code", _SD, final=True)


# --- notifies (§4.2, §5) -------------------------------------------------------------------------


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
    return "" if value is None else _check(value, name, _FREE_TEXT, _RULE_TEXT)


def read_notify_id(params: Mapping[str, str]) -> str:
    """The id `notify_verify` is asked about; opaque, but it travels in a URL."""
    return _check(_required(params, "notify_id"), "notify_id", _NOTIFY_ID, "must be 1..128 visible ASCII")


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
    success_num = int(_check(_required(params, "success_num"), "success_num", _SUCCESS_NUM, "must be digits"))
    succeeded = sum(item.succeeded for item in results)
    if success_num != succeeded:
        raise AlipayFormatError("success_num", f"is {success_num}, but {succeeded} trade results are SUCCESS")
    unfreezed = _param(params, "unfreezed_details")
    batch_no = _required(params, "batch_no")
    _batch_no_date(batch_no, "batch_no")
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
    _batch_no_date(batch_no, "refund_batch_no")
    notify_time = _param(params, "notify_time")
    return DbackNotify(
        notify_id=read_notify_id(params),
        trade_no=_check(_required(params, "trade_no"), "trade_no", _TRADE_NO, _RULE_TRADE_NO),
        refund_id=_check(_required(params, "refund_id"), "refund_id", _TRADE_NO, _RULE_TRADE_NO),
        batch_no=batch_no,
        card_no=_descriptive(params, "card_no"),
        bank_name=_descriptive(params, "bank_name"),
        status=_DBACK_STATUSES[status],
        notify_time=parse_alipay_time(notify_time, "notify_time") if notify_time is not None else None,
    )
