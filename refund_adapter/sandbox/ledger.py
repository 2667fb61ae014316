"""The sandbox's ledger: paid trades, sellers' balances and the refunds made against them.

Every face (one per protocol) refunds from this one ledger, so a trade refunded through one protocol is seen as
refunded through any other. Refusals are named by the MAPI result codes (§8), the ledger's own vocabulary; a face
for another protocol translates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from refund_adapter.channels.mapi.wire import parse_amount
from refund_adapter.money import BEIJING

REFUND_WINDOW = timedelta(days=90)
MAX_REFUNDS_PER_TRADE = 99  # more answer TRADE_STATUS_ERROR (the trade no longer allows refunds)
TRADE_STATUSES = ("paid", "closed", "finished")
DBACK_STATUSES = ("S", "F", "I")  # a scripted 充退 (dback) ends in one of these
SUCCESS = "SUCCESS"


@dataclass(frozen=True)
class TradeSeed:
    """A paid trade the sandbox will accept refunds for; `from_json` reads the `/sandbox/trades` shape."""

    trade_no: str
    amount: Decimal
    status: str = "paid"
    paid_at: datetime | None = None  # default: when seeded
    seller_id: str | None = None  # default: the partner
    seller_balance: Decimal | None = None  # sets the seller account's balance
    dback: str | None = None  # script a 充退 with this status (S, F or I)
    partner: str | None = None  # another partner's trade: NOT_THIS_PARTNERS_TRADE

    @classmethod
    def from_json(cls, obj: Any) -> TradeSeed:
        """Validate one JSON object; ValueError says which field is wrong."""
        if not isinstance(obj, Mapping):
            raise ValueError("a trade must be a JSON object")
        unknown = set(obj) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown trade fields: {', '.join(sorted(unknown))}")
        trade_no = obj.get("trade_no")
        if not isinstance(trade_no, str) or not trade_no or not trade_no.isascii():
            raise ValueError("trade_no: required non-empty ASCII string")
        status = obj.get("status", "paid")
        if status not in TRADE_STATUSES:
            raise ValueError(f"status: one of {', '.join(TRADE_STATUSES)}")
        dback = obj.get("dback")
        if dback is not None and dback not in DBACK_STATUSES:
            raise ValueError(f"dback: one of {', '.join(DBACK_STATUSES)}")
        balance = obj.get("seller_balance")
        return cls(
            trade_no=trade_no,
            amount=_json_amount(obj.get("amount"), "amount"),
            status=status,
            paid_at=_json_time(obj["paid_at"]) if obj.get("paid_at") is not None else None,
            seller_id=_optional_str(obj, "seller_id"),
            seller_balance=None if balance is None else _json_amount(balance, "seller_balance", positive=False),
            dback=dback,
            partner=_optional_str(obj, "partner"),
        )


def _json_amount(value: Any, name: str, *, positive: bool = True) -> Decimal:
    """Money from JSON: a string (or an integer), never a float."""
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f'{name}: a decimal string such as "100.00"')
    return parse_amount(value, name, strict=positive)


def money_json(value: Decimal) -> str:
    """Amounts in the sandbox's JSON views, always with 2 decimals."""
    return f"{value:.2f}"


def _json_time(value: Any) -> datetime:
    """An ISO 8601 datetime; a naive one is Beijing time, like every Alipay timestamp."""
    if not isinstance(value, str):
        raise ValueError("paid_at: an ISO 8601 datetime string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"paid_at: {exc}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name}: a string")
    return value


def parse_trade_seeds(data: Any) -> list[TradeSeed]:
    """One trade object or a list of them (the `/sandbox/trades` body and the `--trades` file)."""
    items = data if isinstance(data, list) else [data]
    seeds = []
    for index, item in enumerate(items):
        try:
            seeds.append(TradeSeed.from_json(item))
        except ValueError as exc:
            raise ValueError(f"trade #{index}: {exc}" if isinstance(data, list) else str(exc)) from exc
    return seeds


@dataclass
class Trade:
    """A trade in the ledger and how much of it was refunded."""

    trade_no: str
    amount: Decimal
    status: str
    paid_at: datetime
    seller_id: str
    partner: str
    dback: str | None
    refunded: Decimal = Decimal("0.00")
    refund_count: int = 0

    def to_json(self, balance: Decimal) -> dict[str, Any]:
        return {
            "trade_no": self.trade_no,
            "amount": money_json(self.amount),
            "status": self.status,
            "paid_at": self.paid_at.isoformat(),
            "partner": self.partner,
            "seller_id": self.seller_id,
            "seller_balance": money_json(balance),
            "dback": self.dback,
            "refunded": money_json(self.refunded),
            "refund_count": self.refund_count,
        }


class Ledger:
    """The trades and balances of one simulated partner; money moves only on a refund that nothing refuses."""

    def __init__(self, partner: str, default_balance: Decimal, now: Callable[[], datetime]) -> None:
        self.partner = partner
        self.default_balance = default_balance
        self.now = now
        self.trades: dict[str, Trade] = {}
        self.balances: dict[str, Decimal] = {}

    def seed(self, seed: TradeSeed) -> Trade:
        """Add (or replace) a trade; a seller balance in the seed sets that account's balance."""
        seller = seed.seller_id or self.partner
        trade = Trade(
            trade_no=seed.trade_no,
            amount=seed.amount,
            status=seed.status,
            paid_at=seed.paid_at or self.now(),
            seller_id=seller,
            partner=seed.partner or self.partner,
            dback=seed.dback,
        )
        self.trades[trade.trade_no] = trade
        if seed.seller_balance is not None:
            self.balances[seller] = seed.seller_balance
        return trade

    def balance(self, seller_id: str) -> Decimal:
        return self.balances.get(seller_id, self.default_balance)

    def refund(self, partner: str, trade_no: str, amount: Decimal) -> str:
        """Refund `amount` of the trade for `partner`: SUCCESS, or the code of the rule that refuses it."""
        trade = self.trades.get(trade_no)
        code = self._refusal(partner, trade, amount)
        if code is not None:
            return code
        assert trade is not None  # _refusal answers TRADE_NOT_EXISTS otherwise
        trade.refunded += amount
        trade.refund_count += 1
        self.balances[trade.seller_id] = self.balance(trade.seller_id) - amount
        return SUCCESS

    def _refusal(self, partner: str, trade: Trade | None, amount: Decimal) -> str | None:
        """Why this refund cannot be made, as its result code; None when it can."""
        if trade is None:
            return "TRADE_NOT_EXISTS"
        if trade.partner != partner:
            return "NOT_THIS_PARTNERS_TRADE"
        if trade.status == "closed":
            return "TRADE_HAS_CLOSED"
        if trade.status == "finished" or self.now() - trade.paid_at > REFUND_WINDOW:
            return "TRADE_HAS_FINISHED"
        if trade.refund_count >= MAX_REFUNDS_PER_TRADE:
            return "TRADE_STATUS_ERROR"
        if amount > trade.amount - trade.refunded:
            return "REFUND_AMOUNT_NOT_VALID"
        if self.balance(trade.seller_id) < amount:
            return "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH"
        return None
