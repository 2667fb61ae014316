"""The one definition of trade numbers and amounts: whole matches over ASCII, nothing a regex `$` or
`str.isdigit` would let through."""

from __future__ import annotations

import string
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refund_adapter.channels.mapi.detail_data import RefundDetail, TradeRefund, encode_detail_data
from refund_adapter.channels.mapi.wire import AlipayFormatError
from refund_adapter.money import (
    MAX_AMOUNT,
    amount_problem,
    is_trade_no,
    parse_amount_text,
    parse_decimal_text,
    to_amount,
)

ALNUM = string.ascii_letters + string.digits


@pytest.mark.parametrize("text", ["2011011201037066", "2024031421001004670000000001", "A", "x" * 64, "T1"])
def test_trade_numbers_alipay_can_carry(text: str) -> None:
    assert is_trade_no(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026112522000000000001\n",  # `re.match` with `$` admits this one: the batch-jamming refund
        "\n2026112522000000000001",
        "20261125 22",
        "2026-1125",
        "",
        "x" * 65,
        "２０２６１１２５",  # full-width digits: str.isdigit() and \d say yes
        "٢٠٢٦",  # Arabic-Indic digits
        "2026\u200b1125",  # a zero-width space
        "2026^1125",  # a detail_data separator
        "Ｔ1",
        None,
        2026112522,
    ],
)
def test_anything_else_is_not_a_trade_number(text: object) -> None:
    assert not is_trade_no(text)


@given(st.text(min_size=1, max_size=70))
def test_the_intake_and_the_codec_agree_on_every_trade_number(text: str) -> None:
    """What the intake admits, the codec writes; what it refuses, the codec refuses too."""
    detail = RefundDetail(TradeRefund(text, Decimal("1.00"), "r"))
    try:
        encode_detail_data([detail])
    except AlipayFormatError:
        assert not is_trade_no(text)
    else:
        assert is_trade_no(text)


@given(st.text(ALNUM, min_size=1, max_size=64))
def test_every_ascii_alphanumeric_up_to_64_is_one(text: str) -> None:
    assert is_trade_no(text)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (Decimal("0.01"), None),
        (MAX_AMOUNT, None),
        (Decimal("5.000"), None),
        (Decimal("0"), "must be greater than zero"),
        (Decimal("-1"), "must be greater than zero"),
        (Decimal("0.001"), "has more than 2 decimals"),
        (MAX_AMOUNT + Decimal("0.01"), f"must be at most {MAX_AMOUNT}"),
        (Decimal("1E+30"), f"must be at most {MAX_AMOUNT}"),
        (Decimal("NaN"), "must be a finite Decimal"),
        (Decimal("-Infinity"), "must be a finite Decimal"),
        (1.5, "must be a finite Decimal"),
        ("1.50", "must be a finite Decimal"),
    ],
)
def test_amount_problem_names_the_rule(value: object, problem: str | None) -> None:
    assert amount_problem(value) == problem


def test_to_amount_writes_fen_and_never_rounds() -> None:
    assert str(to_amount(Decimal("10.500"))) == "10.50"
    assert to_amount(Decimal("10.505")) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.30", Decimal("12.30")), ("80", Decimal("80")), ("999999999999.99", MAX_AMOUNT), ("1.001", Decimal("1.001")),
     ("0", Decimal(0))],
)
def test_plain_decimal_text_is_read_exactly(text: str, value: Decimal) -> None:
    number = parse_decimal_text(text)
    assert number == value and str(number) == text  # never rounded: intake decides what more decimals mean


@pytest.mark.parametrize(
    "text", ["-1", "1e2", "NaN", "Infinity", " 1", "1\n", "１２", "١٢", "1,00", "1000000000000", "1.", ".5", 12, None]
)
def test_anything_else_is_not_a_decimal(text: object) -> None:
    assert parse_decimal_text(text) is None


def test_parse_amount_text_reads_payable_amounts_only() -> None:
    assert parse_amount_text("80") == Decimal("80.00") and str(parse_amount_text("12.3")) == "12.30"
    for text in ("0", "0.00", "1.005", "-1", "1e3", " 1", "1\n", "１２", "", None, 12, "1234567890123"):
        assert parse_amount_text(text) is None, text
