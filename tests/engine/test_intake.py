"""The core's intake checks (`admit`): what cannot be a refund is refused, what cannot be paid is marked."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from refund_adapter.config import parse_config
from refund_adapter.engine.intake import InvalidRequest, admit
from refund_adapter.models import RefundRequest

ACCOUNTS = parse_config({"server": {"public_url": "https://refunds.example.com"},
                         "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}}},
                        env={}).alipay.accounts
REQUEST = RefundRequest("generic", "s1", "r1", "o1", "2026120700000001", Decimal("10.00"), "CNY", "why", "main",
                        paid_amount=Decimal("29.35"))


def test_a_payable_request_is_admitted_as_it_is() -> None:
    assert admit(REQUEST, ACCOUNTS) is REQUEST


@pytest.mark.parametrize(
    ("changes", "rejection", "amount"),
    [
        ({"currency": "USD"}, "UNSUPPORTED_CURRENCY", "10.00"),
        ({"trade_no": ""}, "NO_ALIPAY_TRADE_NO", "10.00"),
        ({"amount": Decimal("10.001")}, "AMOUNT_PRECISION", "10.01"),  # rounded up: never shown as less
        ({"amount": Decimal("29.36")}, "EXCEEDS_PAID_AMOUNT", "29.36"),
        ({"currency": "KWD", "amount": Decimal("1.234")}, "UNSUPPORTED_CURRENCY", "1.24"),  # the first reason
        ({"rejection": "UNKNOWN_PAYMENT", "trade_no": ""}, "UNKNOWN_PAYMENT", "10.00"),  # the plugin's stands
    ],
)
def test_a_request_that_cannot_be_paid_is_marked_with_its_first_reason(
    changes: dict[str, object], rejection: str, amount: str
) -> None:
    admitted = admit(dataclasses.replace(REQUEST, **changes), ACCOUNTS)
    assert (admitted.rejection, str(admitted.amount)) == (rejection, amount)


def test_a_paid_amount_of_more_decimals_bounds_rounded_down_and_rejects_nothing() -> None:
    admitted = admit(dataclasses.replace(REQUEST, paid_amount=Decimal("10.009")), ACCOUNTS)
    assert (admitted.rejection, admitted.paid_amount) == (None, Decimal("10.00"))
    over = admit(dataclasses.replace(REQUEST, amount=Decimal("10.01"), paid_amount=Decimal("10.009")), ACCOUNTS)
    assert over.rejection == "EXCEEDS_PAID_AMOUNT"


@pytest.mark.parametrize(
    "changes",
    [{"amount": Decimal(0)}, {"amount": Decimal("-1")}, {"amount": Decimal("NaN")}, {"amount": Decimal("Infinity")},
     {"amount": Decimal("1E+30")}, {"paid_amount": Decimal("0.001")},
     {"platform_refund_id": ""}, {"alipay_account": "hk"}],
)
def test_what_cannot_be_a_refund_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        admit(dataclasses.replace(REQUEST, **changes), ACCOUNTS)
