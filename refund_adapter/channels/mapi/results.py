"""`result_details` (§4.3, §4.4, §6): what happened to each detail, as the notify and the query tell it, and the
notify's `unfreezed_details` (§4.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from refund_adapter.money import TRADE_NO, TRADE_NO_RULE

from .batch_no import batch_no_date
from .wire import (
    ARGUMENT_ERROR,
    CODE,
    CODE_RULE,
    FREE_TEXT,
    FREE_TEXT_RULE,
    AlipayFormatError,
    amount_text,
    check_party,
    check_token,
    join_items,
    parse_amount,
    split_fields,
    split_items,
    split_sub_trade,
)

_WIRE_BOOL = {"true": True, "false": False}
_WIRE_DBACK: Mapping[str, str | None] = {"S": "S", "F": "F", "P": "P", "null": None}


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
    check_token(trade.trade_no, f"{field}.trade_no", TRADE_NO, TRADE_NO_RULE)
    check_token(trade.code, f"{field}.code", CODE, CODE_RULE)
    if trade.is_dback is None and trade.dback_result is not None:
        raise AlipayFormatError(f"{field}.dback_result", "needs is_dback")
    if not isinstance(trade.is_dback, bool | None) or trade.dback_result not in _WIRE_DBACK.values():
        raise AlipayFormatError(f"{field}.is_dback", "must be None, or a bool with dback_result S|F|P|None")
    if item.charge is not None:
        check_party(item.charge.account, item.charge.user_id, f"{field}.charge", ARGUMENT_ERROR)
        check_token(item.charge.code, f"{field}.charge.code", CODE, CODE_RULE)
    for index, royalty in enumerate(item.royalties):
        where = f"{field}.royalties[{index}]"
        check_party(royalty.out_account, royalty.out_user_id, f"{where}.out", ARGUMENT_ERROR)
        check_party(royalty.in_account, royalty.in_user_id, f"{where}.in", ARGUMENT_ERROR)
        check_token(royalty.code, f"{where}.code", CODE, CODE_RULE)
    if item.sub_trade is not None:
        check_token(item.sub_trade.code, f"{field}.sub_trade.code", CODE, CODE_RULE)


def _echo(value: Decimal, field: str) -> str:
    """Amounts in results may be 0 (nothing refunded)."""
    return amount_text(value, field, strict=False)


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
    trade_no, amount, code, *dback = split_fields(text, field, 3, 5)
    is_dback = dback_result = None
    if dback:
        if dback[0] not in _WIRE_BOOL or dback[1] not in _WIRE_DBACK:
            raise AlipayFormatError(f"{field}.is_dback", "must be true|false then S|F|P|null")
        is_dback, dback_result = _WIRE_BOOL[dback[0]], _WIRE_DBACK[dback[1]]
    return TradeResult(trade_no, _read_echo(amount, f"{field}.amount"), code, is_dback, dback_result)


def _decode_item(text: str, field: str) -> ResultItem:
    """Split `$$`, then `|`, then the first `$` (§4.3); never a regex character class."""
    head, sub_text = split_sub_trade(text, field)
    first, *royalty_texts = head.split("|")
    trade_text, dollar, charge_text = first.partition("$")
    charge = None
    if dollar:
        account, user_id, amount, code = split_fields(charge_text, f"{field}.charge", 4)
        charge = ChargeResult(account, user_id, _read_echo(amount, f"{field}.charge.amount"), code)
    royalties = []
    for index, royalty_text in enumerate(royalty_texts):
        where = f"{field}.royalties[{index}]"
        out_account, out_user_id, in_account, in_user_id, amount, code = split_fields(royalty_text, where, 6)
        royalties.append(
            RoyaltyResult(
                out_account, out_user_id, in_account, in_user_id, _read_echo(amount, f"{where}.amount"), code
            )
        )
    sub_trade = None
    if sub_text is not None:
        amount, refundable, code = split_fields(sub_text, f"{field}.sub_trade", 3)
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
    return join_items(items, "result_details", _item_text)


def decode_result_details(text: str) -> list[ResultItem]:
    """Read a notify's `result_details`."""
    return split_items(text, "result_details", _decode_item)


@dataclass(frozen=True)
class QueryItem:
    """A query result item: the batch it belongs to, then the same shape as a notify item."""

    batch_no: str
    result: ResultItem


def _query_item_text(item: QueryItem, field: str) -> str:
    """batch_no^ + a result item."""
    batch_no_date(item.batch_no, f"{field}.batch_no")
    return f"{item.batch_no}^{_item_text(item.result, field)}"


def _decode_query_item(text: str, field: str) -> QueryItem:
    """Split off batch_no at the first `^`, then read a result item."""
    batch_no, _, rest = text.partition("^")
    batch_no_date(batch_no, f"{field}.batch_no")
    return QueryItem(batch_no, _decode_item(rest, field))


def encode_query_result_details(items: Sequence[QueryItem]) -> str:
    """Write `refund_fastpay_query`'s `result_details` (§6)."""
    return join_items(items, "result_details", _query_item_text)


def decode_query_result_details(text: str) -> list[QueryItem]:
    """Read `refund_fastpay_query`'s `result_details` (§6)."""
    return split_items(text, "result_details", _decode_query_item)


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
        check_token(getattr(item, name), f"{field}.{name}", TRADE_NO, TRADE_NO_RULE)
    check_token(item.processed_at, f"{field}.processed_at", FREE_TEXT, FREE_TEXT_RULE)
    check_token(item.status, f"{field}.status", CODE, CODE_RULE)
    check_token(item.code, f"{field}.code", CODE, CODE_RULE)


def _unfreezed_text(item: UnfreezedDetail, field: str) -> str:
    """Write one validated unfreeze record."""
    _validate_unfreezed(item, field)
    amount = _echo(item.amount, f"{field}.amount")
    orders = f"{item.unfreeze_order_no}^{item.freeze_order_no}"
    return f"{orders}^{amount}^{item.trade_no}^{item.processed_at}^{item.status}^{item.code}"


def _decode_unfreezed(text: str, field: str) -> UnfreezedDetail:
    """Read one unfreeze record of exactly 7 fields."""
    unfreeze, freeze, amount, trade_no, processed_at, status, code = split_fields(text, field, 7)
    amount_value = _read_echo(amount, f"{field}.amount")
    item = UnfreezedDetail(unfreeze, freeze, amount_value, trade_no, processed_at, status, code)
    _validate_unfreezed(item, field)
    return item


def encode_unfreezed_details(items: Sequence[UnfreezedDetail]) -> str:
    """Write `unfreezed_details` (records joined by `#`, (I))."""
    return join_items(items, "unfreezed_details", _unfreezed_text)


def decode_unfreezed_details(text: str) -> list[UnfreezedDetail]:
    """Read `unfreezed_details`."""
    return split_items(text, "unfreezed_details", _decode_unfreezed)
