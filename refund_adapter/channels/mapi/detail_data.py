"""`detail_data` (§1.4): the refund details of one batch, their reasons and the rules Alipay refuses a batch for."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from refund_adapter.money import TRADE_NO, TRADE_NO_RULE

from .wire import (
    DETAIL_ERROR,
    AlipayFormatError,
    charset_codec,
    check_party,
    check_token,
    format_amount,
    join_items,
    parse_amount,
    split_fields,
    split_items,
    split_sub_trade,
)

MAX_DETAILS = 1000
MAX_REASON_BYTES = 256
FORBIDDEN_REASON_CHARS = "^|$#"
# Printable ASCII but the forbidden characters, within the byte limit in every charset: nothing to clean.
_PLAIN_REASON = re.compile(
    f"[^{re.escape(FORBIDDEN_REASON_CHARS)}\\x00-\\x1f\\x7f-\\U0010ffff]{{0,{MAX_REASON_BYTES}}}"
)


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
    codec = charset_codec(charset)
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
    codec = charset_codec(charset)
    if not isinstance(text, str):
        raise AlipayFormatError(field, "must be a string", code=DETAIL_ERROR)
    bad = next((char for char in text if char in FORBIDDEN_REASON_CHARS or _is_control(char)), None)
    if bad is not None:
        raise AlipayFormatError(field, f"must not contain {bad!r} (^ | $ # or a control)", code=DETAIL_ERROR)
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
        raise AlipayFormatError("detail_data", "needs at least one detail", code=DETAIL_ERROR)
    if count > MAX_DETAILS:
        raise AlipayFormatError(
            "batch_num", f"{count} details; at most {MAX_DETAILS}", code="BATCH_NUM_EXCEED_LIMIT"
        )


def _validate_detail(detail: RefundDetail, codec: str, field: str) -> None:
    """Every rule of one detail except amounts, which are checked where they are read or written."""
    check_token(detail.trade.trade_no, f"{field}.trade_no", TRADE_NO, TRADE_NO_RULE, DETAIL_ERROR)
    validate_reason(detail.trade.reason, codec, f"{field}.reason")
    pairs: set[tuple[str, str, str, str]] = set()
    for index, royalty in enumerate(detail.royalties):
        where = f"{field}.royalties[{index}]"
        check_party(royalty.out_account, royalty.out_user_id, f"{where}.out", DETAIL_ERROR)
        check_party(royalty.in_account, royalty.in_user_id, f"{where}.in", DETAIL_ERROR)
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
    head, sub_text = split_sub_trade(text, field)
    trade_text, *royalty_texts = head.split("|")
    trade_no, amount, reason = split_fields(trade_text, field, 3)
    royalties = []
    for index, royalty_text in enumerate(royalty_texts):
        where = f"{field}.royalties[{index}]"
        out_account, out_user_id, in_account, in_user_id, royalty_amount, royalty_reason = split_fields(
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
        sub_amount, sub_reason = split_fields(sub_text, f"{field}.sub_trade", 2)
        sub_trade = SubTradeRefund(parse_amount(sub_amount, f"{field}.sub_trade.amount"), sub_reason)
    trade = TradeRefund(trade_no, parse_amount(amount, f"{field}.amount"), reason)
    return RefundDetail(trade, tuple(royalties), sub_trade)


def refused_details(details: Sequence[RefundDetail], charset: str = "utf-8") -> dict[int, AlipayFormatError]:
    """Which details `encode_detail_data` refuses, by index, so that one bad detail can leave its batch instead
    of holding the others: each detail checked alone, then each repeat of a trade_no after its first."""
    codec = charset_codec(charset)
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
    _validate_details(details, charset_codec(charset))
    return join_items(details, "detail_data", _detail_text)


def decode_detail_data(text: str, charset: str = "utf-8") -> list[RefundDetail]:
    """Read `detail_data` under the same rules as `encode_detail_data` (amounts strict)."""
    codec = charset_codec(charset)
    details = split_items(text, "detail_data", _decode_detail)
    _validate_details(details, codec)
    return details


def batch_num(details: Sequence[RefundDetail]) -> str:
    """`batch_num` is the detail count, "#" count + 1 (§1.3)."""
    _check_count(len(details))
    return str(len(details))
