"""The MAPI codec against the protocol reference: its examples, its rules, and hostile input."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from refund_adapter.channels.mapi.ack import Ack, parse_ack, render_ack
from refund_adapter.channels.mapi.batch_no import batch_no_date, batch_serial, build_batch_no, validate_batch_no
from refund_adapter.channels.mapi.detail_data import (
    MAX_DETAILS,
    RefundDetail,
    RoyaltyRefund,
    SubTradeRefund,
    TradeRefund,
    batch_num,
    clean_reason,
    decode_detail_data,
    encode_detail_data,
    validate_reason,
)
from refund_adapter.channels.mapi.errors import ERROR_CODES, error_code
from refund_adapter.channels.mapi.notify import parse_dback_notify, parse_refund_notify
from refund_adapter.channels.mapi.query import QueryResponse, parse_query_response, render_query_response
from refund_adapter.channels.mapi.results import (
    ChargeResult,
    QueryItem,
    ResultItem,
    RoyaltyResult,
    SubTradeResult,
    TradeResult,
    UnfreezedDetail,
    decode_query_result_details,
    decode_result_details,
    decode_unfreezed_details,
    encode_query_result_details,
    encode_result_details,
    encode_unfreezed_details,
)
from refund_adapter.channels.mapi.wire import (
    AlipayFormatError,
    format_alipay_time,
    format_amount,
    parse_alipay_time,
    parse_amount,
)
from refund_adapter.money import BEIJING, beijing_now

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHARSETS = ("utf-8", "gbk")
T = TypeVar("T")

DOC_QUERY_SAMPLE = (
    "201012300001^2010123016346858^0.02^SUCCESS"
    "|zen_gwen@hotmail.com^2088102210397302^alipay-test03@alipay.com^2088101568345155^0.01^SUCCESS"
    "$$10.00^10.00^SUCCESS"
)
DOC_FEE_SAMPLE = "2010031906272929^80^SUCCESS$jax_chuanhang@alipay.com^2088101003147483^0.01^SUCCESS"
DOC_NOTIFY = {  # §2.5, the refund notify as posted
    "notify_time": "2009-08-12 11:08:32",
    "notify_type": "batch_refund_notify",
    "notify_id": "70fec0c2730b27528665af4517c27b95",
    "batch_no": "20060702001",
    "success_num": "1",
    "result_details": "2010031206252779^10.00^SUCCESS",
    "sign": "0c1c26c8451086d2412a993280fd8623",
    "sign_type": "MD5",
}
NOTIFY_KEYS = [*DOC_NOTIFY, "unfreezed_details"]
DBACK_NOTIFY = {
    "notify_id": "a1b2c3",
    "trade_no": "2010031206252779",
    "refund_id": "R2010031206252779",
    "refund_batch_no": "20100312R001",
    "card_no": "6222****1234",
    "bank_name": "招商银行",
    "status": "S",
}


def refused(field: str, code: str | None = None) -> Any:
    """Expect AlipayFormatError on `field` (and `code`), so a test fails if the wrong rule fires."""
    return pytest.raises(AlipayFormatError, check=lambda e: e.field == field and code in (None, e.code))


def only_format_errors(decode: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Hostile input may be refused, but only with AlipayFormatError, whose message is field: rule."""
    try:
        return decode(*args, **kwargs)
    except AlipayFormatError as exc:
        assert str(exc) == f"{exc.field}: {exc.rule}"
        return None


# --- strategies ----------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
trade_nos = st.text(ALNUM, min_size=1, max_size=64)
user_ids = st.integers(0, 10**12 - 1).map(lambda n: f"2088{n:012d}")
accounts = st.text(ALNUM + "._@+*-", min_size=1, max_size=40)
parties = st.one_of(
    st.tuples(accounts, st.just("")), st.tuples(st.just(""), user_ids), st.tuples(accounts, user_ids)
)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999999.99"), places=2)
echoed_amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999999999.99"), places=2)
codes = st.sampled_from(["SUCCESS", *ERROR_CODES]) | st.text(ALNUM + "_", min_size=1, max_size=20)
serials = st.text(ALNUM, min_size=3, max_size=24).filter(lambda s: s.strip("0") != "")
batch_nos = st.builds(
    lambda day, serial: day.strftime("%Y%m%d") + serial,
    st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    serials,
)


def reasons(charset: str) -> st.SearchStrategy[str]:
    """Any unicode, made valid for the charset the way the engine does it."""
    return st.text(max_size=100).map(lambda text: clean_reason(text, charset))


def details_in(charset: str) -> st.SearchStrategy[list[RefundDetail]]:
    """All 4 shapes of §1.4, with unique trade numbers and royalty pairs."""
    royalty = st.builds(
        lambda out, into, amount, reason: RoyaltyRefund(*out, *into, amount, reason),
        parties,
        parties,
        amounts,
        reasons(charset),
    )
    detail = st.builds(
        RefundDetail,
        st.builds(TradeRefund, trade_nos, amounts, reasons(charset)),
        st.lists(
            royalty,
            max_size=2,
            unique_by=lambda r: (r.out_account, r.out_user_id, r.in_account, r.in_user_id),
        ).map(tuple),
        st.none() | st.builds(SubTradeRefund, amounts, reasons(charset)),
    )
    return st.lists(detail, min_size=1, max_size=4, unique_by=lambda d: d.trade.trade_no)


DETAILS = {charset: details_in(charset) for charset in CHARSETS}
trade_results = st.one_of(
    st.builds(TradeResult, trade_nos, echoed_amounts, codes),
    st.builds(
        TradeResult, trade_nos, echoed_amounts, codes, st.booleans(), st.sampled_from(["S", "F", "P", None])
    ),
)
result_items = st.builds(
    ResultItem,
    trade_results,
    st.none()
    | st.builds(
        lambda party, amount, code: ChargeResult(*party, amount, code), parties, echoed_amounts, codes
    ),
    st.lists(
        st.builds(
            lambda out, into, amount, code: RoyaltyResult(*out, *into, amount, code),
            parties,
            parties,
            echoed_amounts,
            codes,
        ),
        max_size=2,
    ).map(tuple),
    st.none() | st.builds(SubTradeResult, echoed_amounts, echoed_amounts, codes),
)
query_items = st.builds(QueryItem, batch_nos, result_items)
unfreezed_items = st.builds(
    UnfreezedDetail,
    trade_nos,
    trade_nos,
    echoed_amounts,
    trade_nos,
    st.just("2024-03-15 10:00:00") | st.text(ALNUM + " :-", min_size=1, max_size=20),
    codes,
    codes,
)
noise = st.sampled_from([*"^|$#.0129Aa@ \n%<>&=\x00", "$$", "^^", "null", "true", "2088", "协", "😀"])


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[str]) -> str:
    """A valid wire string with a few insertions, deletions and replacements, biased to separators."""
    text = draw(valid)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        piece = draw(noise | st.characters())
        text = draw(
            st.sampled_from(
                [
                    text[:position] + piece + text[position:],
                    text[:position] + text[position + 1 :],
                    text[:position] + piece + text[position + 1 :],
                ]
            )
        )
    return text


# --- errors --------------------------------------------------------------------------------------


def test_format_error_names_field_and_rule() -> None:
    err = AlipayFormatError("batch_no", "must be yyyyMMdd + serial")
    assert isinstance(err, ValueError)
    assert (str(err), err.field, err.rule, err.code) == (
        "batch_no: must be yyyyMMdd + serial",
        "batch_no",
        "must be yyyyMMdd + serial",
        "ILLEGAL_ARGUMENT",
    )


# --- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["5.00", "0.01", "80", "100", "1.5", "007.10"])
def test_parse_amount_reads_plain_decimals(text: str) -> None:
    value = parse_amount(text)
    assert isinstance(value, Decimal) and value == Decimal(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0.00",
        "-1",
        "+1",
        "1e2",
        "1E2",
        "NaN",
        "Infinity",
        "sNaN",
        " 1",
        "1 ",
        "1.0\n",
        "1.",
        ".5",
        "1.234",
        "1,00",
        "1_000",
        "0x10",
        "١٢",
        "１２",
        "5.00元",
    ],
)
def test_parse_amount_refuses_anything_else(text: str) -> None:
    with refused("refund.amount", "DETAIL_DATA_FORMAT_ERROR"):
        parse_amount(text, "refund.amount")


def test_parse_amount_lenient_admits_zero_but_not_junk() -> None:
    assert parse_amount("0", strict=False) == 0 and parse_amount("80", strict=False) == Decimal("80.00")
    for text in ("-0", "NaN", "1e1", "0.001"):
        with refused("amount"):
            parse_amount(text, strict=False)
    with refused("amount"):
        parse_amount(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("5"), "5.00"),
        (Decimal("0.1"), "0.10"),
        (Decimal("5.000"), "5.00"),
        (Decimal("1E+2"), "100.00"),
        (Decimal("0.01"), "0.01"),
        (Decimal("999999999999.99"), "999999999999.99"),  # refund_adapter.money.MAX_AMOUNT
    ],
)
def test_format_amount_writes_two_decimals(value: Decimal, text: str) -> None:
    assert format_amount(value) == text


@pytest.mark.parametrize(
    "value",
    [
        5.0,
        5,
        "5.00",
        Decimal("0"),
        Decimal("-0"),
        Decimal("-1"),
        Decimal("0.001"),
        Decimal("1.005"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1000000000000"),  # past MAX_AMOUNT: no amount the intake would refuse is ever written
        Decimal("12345678901234567890123456789.5"),
    ],
)
def test_format_amount_refuses_floats_and_bad_values(value: Any) -> None:
    with refused("fee"):
        format_amount(value, "fee")


@FAST
@given(amounts)
def test_amounts_round_trip(value: Decimal) -> None:
    assert parse_amount(format_amount(value)) == value


@FAST
@given(st.text())
def test_parse_amount_fails_only_with_format_error(text: str) -> None:
    only_format_errors(parse_amount, text)
    only_format_errors(parse_amount, text, "amount", strict=False)


# --- time ----------------------------------------------------------------------------------------


def test_beijing_now_converts_an_injected_clock() -> None:
    moment = beijing_now(datetime(2024, 3, 14, 16, 30, tzinfo=UTC))
    assert moment.tzinfo is BEIJING and (moment.date(), moment.hour) == (date(2024, 3, 15), 0)
    assert beijing_now().utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError, match="now: must be a timezone-aware datetime"):
        beijing_now(datetime(2024, 3, 14, 16, 30))


def test_format_alipay_time_is_24_hour_beijing() -> None:
    assert format_alipay_time(datetime(2011, 1, 12, 3, 21, tzinfo=UTC)) == "2011-01-12 11:21:00"
    assert format_alipay_time(datetime(2024, 3, 15, 15, 4, 5, 999, tzinfo=BEIJING)) == "2024-03-15 15:04:05"
    assert format_alipay_time(datetime(2024, 3, 15, 23, 0, tzinfo=timezone(timedelta(hours=-5)))) == (
        "2024-03-16 12:00:00"
    )
    with refused("moment", "REFUND_DATE_ERROR"):
        format_alipay_time(datetime(2024, 3, 15, 15, 4, 5))


def test_parse_alipay_time_is_aware_beijing() -> None:
    moment = parse_alipay_time("2011-01-12 11:21:00")
    assert moment == datetime(2011, 1, 12, 3, 21, tzinfo=UTC) and moment.tzinfo is BEIJING


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2011-01-12T11:21:00",
        "2011-1-12 11:21:00",
        "2011-01-12 11:21",
        "2011-01-12 11:21:00 ",
        "2011-02-30 10:00:00",
        "2011-01-12 24:00:00",
        "0000-01-12 10:00:00",
        "２０１１-01-12 11:21:00",
    ],
)
def test_parse_alipay_time_refuses_other_forms(text: str) -> None:
    with refused("notify_time", "REFUND_DATE_ERROR"):
        parse_alipay_time(text, "notify_time")


@FAST
@given(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.timezones()))
def test_alipay_time_round_trips_to_the_second(moment: datetime) -> None:
    # compare in UTC: PEP 495 makes inter-zone equality False for times in a DST fold
    assert parse_alipay_time(format_alipay_time(moment)) == moment.replace(microsecond=0).astimezone(UTC)


@FAST
@given(st.text() | mutated(st.just("2024-03-15 10:00:00")))
def test_parse_alipay_time_fails_only_with_format_error(text: str) -> None:
    only_format_errors(parse_alipay_time, text)


# --- batch_no ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "batch_id", "serial"),
    [
        ("", 1, "000001"),
        ("A1", 36, "A1000010"),
        ("", 36**6, "1000000"),
        ("Z", 12345, "Z0009IX"),
        ("ABCDEFGH", 36**16 - 1, "ABCDEFGH" + "Z" * 16),
    ],
)
def test_batch_serial_is_namespace_plus_padded_base36(namespace: str, batch_id: int, serial: str) -> None:
    assert batch_serial(namespace, batch_id) == serial


@pytest.mark.parametrize(
    ("namespace", "batch_id", "field"),
    [
        ("a", 1, "namespace"),
        ("ABCDEFGHI", 1, "namespace"),
        ("A-", 1, "namespace"),
        ("", 0, "batch_id"),
        ("", -1, "batch_id"),
        ("", True, "batch_id"),
        ("ABCDEFGH", 36**16, "batch_id"),
    ],
)
def test_batch_serial_refuses_bad_input(namespace: str, batch_id: int, field: str) -> None:
    with refused(field, "BATCH_NO_FORMAT_ERROR"):
        batch_serial(namespace, batch_id)


def test_build_batch_no_prefixes_the_beijing_day() -> None:
    assert build_batch_no(date(2024, 3, 15), "A1", 12345) == "20240315A10009IX"
    with refused("day", "BATCH_NO_FORMAT_ERROR"):
        build_batch_no(datetime(2024, 3, 15, tzinfo=BEIJING), "A1", 1)  # a datetime hides a zone choice


@FAST
@given(
    st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", max_size=8),
    st.integers(1, 36**16 - 1),
    st.integers(1, 36**16 - 1),
)
def test_built_batch_nos_are_valid_and_distinct(day: date, namespace: str, first: int, second: int) -> None:
    batch_no = build_batch_no(day, namespace, first)
    if len(batch_no) <= 32:
        assert validate_batch_no(batch_no, today=day) == batch_no and batch_no_date(batch_no) == day
        assert 11 <= len(batch_no) <= 32
        if first != second:
            assert only_format_errors(build_batch_no, day, namespace, second) != batch_no


@pytest.mark.parametrize(
    "batch_no", ["201101120001", "20060702001", "20240315R0001", "20121204001", "2024031500a"]
)
def test_validate_batch_no_accepts_doc_examples(batch_no: str) -> None:
    assert validate_batch_no(batch_no) == batch_no


@pytest.mark.parametrize(
    "batch_no",
    [
        "2024031500",
        "20240315000",
        "2024031500000000",
        "20241315001",
        "20240230001",
        "20240315" + "1" * 25,
        "20240315ab-1",
        "2024-03-15001",
        " 20240315001",
        "20240315001\n",
        "２０２４0315001",
    ],
)
def test_validate_batch_no_refuses_bad_format(batch_no: str) -> None:
    with refused("batch_no", "BATCH_NO_FORMAT_ERROR"):
        validate_batch_no(batch_no)
    with refused("batch_no"):
        batch_no_date(batch_no)


def test_validate_batch_no_today_is_the_same_day_rule() -> None:
    assert validate_batch_no("20240315001", today=date(2024, 3, 15)) == "20240315001"
    with refused("batch_no", "BATCH_NO_FORMAT_ERROR"):
        validate_batch_no("20240315001", today=date(2024, 3, 16))
    with refused("today"):
        validate_batch_no("20240315001", today=datetime(2024, 3, 15, tzinfo=BEIJING))
    assert batch_no_date("20240315001") == date(2024, 3, 15)


@FAST
@given(st.text() | mutated(batch_nos))
def test_validate_batch_no_fails_only_with_format_error(text: str) -> None:
    only_format_errors(validate_batch_no, text)


# --- reasons -------------------------------------------------------------------------------------


def test_clean_reason_drops_separators_and_controls() -> None:
    assert clean_reason("协商^退|款$原#因\n\t\u200b\u2028ok") == "协商退款原因ok"
    assert clean_reason("refund 😀 ok", "gbk") == "refund ? ok"
    assert clean_reason("bad \ud800 surrogate") == "bad ? surrogate"


@pytest.mark.parametrize(
    ("text", "charset", "kept"),
    [
        ("协" * 100, "utf-8", 85),
        ("协" * 200, "gbk", 128),
        ("a" * 300, "utf-8", 256),
        ("😀" * 70, "utf-8", 64),
        ("a" + "协" * 100, "utf-8", 86),
    ],
)
def test_clean_reason_truncates_to_256_bytes_on_whole_characters(text: str, charset: str, kept: int) -> None:
    cleaned = clean_reason(text, charset)
    assert cleaned == text[:kept] and len(cleaned.encode(charset)) <= 256


@FAST
@given(st.text(max_size=400), st.sampled_from(["utf-8", "gbk", "gb2312", "UTF8"]))
def test_clean_reason_always_yields_a_valid_reason(text: str, charset: str) -> None:
    cleaned = clean_reason(text, charset)
    assert validate_reason(cleaned, charset) == cleaned
    assert clean_reason(cleaned, charset) == cleaned


@pytest.mark.parametrize(
    ("text", "charset", "code"),
    [
        ("a^b", "utf-8", "DETAIL_DATA_FORMAT_ERROR"),
        ("a|b", "utf-8", "DETAIL_DATA_FORMAT_ERROR"),
        ("a$b", "utf-8", "DETAIL_DATA_FORMAT_ERROR"),
        ("a#b", "utf-8", "DETAIL_DATA_FORMAT_ERROR"),
        ("a\nb", "utf-8", "DETAIL_DATA_FORMAT_ERROR"),
        ("a" * 257, "utf-8", "BATCH_MEMO_LENGTH_EXCEED_LIMIT"),
        ("协" * 100, "utf-8", "BATCH_MEMO_LENGTH_EXCEED_LIMIT"),
        ("😀", "gbk", "SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT"),
    ],
)
def test_validate_reason_refuses_what_alipay_would(text: str, charset: str, code: str) -> None:
    with refused("memo", code):
        validate_reason(text, charset, "memo")


def test_validate_reason_counts_bytes_in_the_charset() -> None:
    assert validate_reason("a" * 256) == "a" * 256
    assert validate_reason("协" * 100, "gbk") == "协" * 100  # 200 bytes in GBK, 300 in UTF-8
    assert validate_reason("") == ""
    with refused("charset", "ILLEGAL_CHARSET"):
        validate_reason("ok", "latin-1")


# --- detail_data ---------------------------------------------------------------------------------

DOC_DETAILS = [  # §1.4 examples (the test fixture's "TRADE#" placeholder needs a real trade number)
    ("2011011201037066^5.00^协商退款", "2011011201037066^5.00^协商退款"),
    ("T1^100^协商退款", "T1^100.00^协商退款"),
    ("T1^100^协商退款$$20^协商退款", "T1^100.00^协商退款$$20.00^协商退款"),
    (
        "T1^100^协商退款|from^2088701892019087^to^2088701892019088^30^协商退款",
        "T1^100.00^协商退款|from^2088701892019087^to^2088701892019088^30.00^协商退款",
    ),
    (
        "T1^100^协商退款|from^2088701892019087^to^2088701892019088^30^协商退款$$20^协商退款",
        "T1^100.00^协商退款|from^2088701892019087^to^2088701892019088^30.00^协商退款$$20.00^协商退款",
    ),
]


@pytest.mark.parametrize(("text", "canonical"), DOC_DETAILS)
@pytest.mark.parametrize("charset", CHARSETS)
def test_doc_detail_data_decodes_and_reencodes(text: str, canonical: str, charset: str) -> None:
    details = decode_detail_data(text, charset)
    assert encode_detail_data(details, charset) == canonical
    assert decode_detail_data(canonical, charset) == details


def test_detail_data_shape_with_royalty_and_sub_trade() -> None:
    [detail] = decode_detail_data(DOC_DETAILS[4][0])
    assert detail == RefundDetail(
        TradeRefund("T1", Decimal("100"), "协商退款"),
        (RoyaltyRefund("from", "2088701892019087", "to", "2088701892019088", Decimal("30"), "协商退款"),),
        SubTradeRefund(Decimal("20"), "协商退款"),
    )


def test_encode_detail_data_joins_details_with_hash() -> None:
    details = [
        RefundDetail(TradeRefund("2024031421001004670000000001", Decimal("10"), "refund A")),
        RefundDetail(TradeRefund("2024031421001004670000000002", Decimal("0.5"), "refund B")),
    ]
    assert encode_detail_data(details) == (  # §2.5 two-detail batch
        "2024031421001004670000000001^10.00^refund A#2024031421001004670000000002^0.50^refund B"
    )
    assert batch_num(details) == "2"


def _trade(trade_no: str = "T1", amount: Any = Decimal("1"), reason: str = "r") -> RefundDetail:
    return RefundDetail(TradeRefund(trade_no, amount, reason))


def _royalty(
    out: tuple[str, str] = ("from", ""), into: tuple[str, str] = ("", "2088701892019088")
) -> RoyaltyRefund:
    return RoyaltyRefund(*out, *into, Decimal("1"), "r")


@pytest.mark.parametrize(
    ("details", "field", "code"),
    [
        ([], "detail_data", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade(f"T{i}") for i in range(MAX_DETAILS + 1)], "batch_num", "BATCH_NUM_EXCEED_LIMIT"),
        (
            [_trade("T1"), _trade("T2"), _trade("T1")],
            "detail_data[2].trade_no",
            "DUBL_TRADE_NO_IN_SAME_BATCH",
        ),
        ([_trade("")], "detail_data[0].trade_no", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade("T" * 65)], "detail_data[0].trade_no", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade("T-1")], "detail_data[0].trade_no", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade(amount=1.0)], "detail_data[0].amount", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade(amount=Decimal("0"))], "detail_data[0].amount", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade(amount=Decimal("0.001"))], "detail_data[0].amount", "DETAIL_DATA_FORMAT_ERROR"),
        ([_trade(reason="a" * 257)], "detail_data[0].reason", "BATCH_MEMO_LENGTH_EXCEED_LIMIT"),
        ([_trade(reason="a^b")], "detail_data[0].reason", "DETAIL_DATA_FORMAT_ERROR"),
        (
            [RefundDetail(_trade().trade, (_royalty(out=("", "")),))],
            "detail_data[0].royalties[0].out",
            "DETAIL_DATA_FORMAT_ERROR",
        ),
        (
            [RefundDetail(_trade().trade, (_royalty(into=("", "")),))],
            "detail_data[0].royalties[0].in",
            "DETAIL_DATA_FORMAT_ERROR",
        ),
        (
            [RefundDetail(_trade().trade, (RoyaltyRefund("from", "", "", "2088701892019088", Decimal("1"), "a|b"),))],
            "detail_data[0].royalties[0].reason",
            "DETAIL_DATA_FORMAT_ERROR",
        ),
        (
            [RefundDetail(_trade().trade, (RoyaltyRefund("from", "", "", "2088701892019088", Decimal("0.001"), "r"),))],
            "detail_data[0].royalties[0].amount",
            "DETAIL_DATA_FORMAT_ERROR",
        ),
        (
            [RefundDetail(_trade().trade, sub_trade=SubTradeRefund(Decimal("0.001"), "r"))],
            "detail_data[0].sub_trade.amount",
            "DETAIL_DATA_FORMAT_ERROR",
        ),
        (
            [RefundDetail(_trade().trade, (_royalty(out=("", "2087701892019087")),))],
            "detail_data[0].royalties[0].out_user_id",
            None,
        ),
        (
            [RefundDetail(_trade().trade, (_royalty(out=("", "208870189201908")),))],
            "detail_data[0].royalties[0].out_user_id",
            None,
        ),
        (
            [RefundDetail(_trade().trade, (_royalty(out=("a^b", "")),))],
            "detail_data[0].royalties[0].out_account",
            None,
        ),
        (
            [RefundDetail(_trade().trade, (_royalty(), _royalty()))],
            "detail_data[0].royalties[1]",
            "DUBL_ROYALTY_IN_DETAIL",
        ),
        (
            [RefundDetail(_trade().trade, sub_trade=SubTradeRefund(Decimal("1"), "x|y"))],
            "detail_data[0].sub_trade.reason",
            None,
        ),
    ],
)
def test_encode_detail_data_enforces_every_rule(
    details: list[RefundDetail], field: str, code: str | None
) -> None:
    with refused(field, code):
        encode_detail_data(details)


def test_detail_data_rule_texts_carry_the_sandbox_fragments() -> None:
    cases = [
        ([_trade(reason="a" * 257)], "256 bytes"),
        ([_trade(), _trade()], "duplicate trade"),
        ([RefundDetail(_trade().trade, (_royalty(), _royalty()))], "duplicate royalty"),
    ]
    for details, fragment in cases:
        with pytest.raises(AlipayFormatError, match=fragment):
            encode_detail_data(details)


def test_a_batch_of_exactly_1000_details_is_allowed() -> None:
    details = [_trade(f"T{i}") for i in range(MAX_DETAILS)]
    assert batch_num(details) == "1000"
    assert encode_detail_data(details).count("#") == MAX_DETAILS - 1


def test_detail_data_byte_limit_depends_on_the_charset() -> None:
    text = "T1^1.00^" + "协" * 100
    assert decode_detail_data(text, "gbk")[0].trade.reason == "协" * 100
    with refused("detail_data[0].reason", "BATCH_MEMO_LENGTH_EXCEED_LIMIT"):
        decode_detail_data(text, "utf-8")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "detail_data"),
        ("#", "detail_data[0]"),
        ("T1^1^r#", "detail_data[1]"),
        ("T1^1", "detail_data[0]"),
        ("T1^1^r^x", "detail_data[0]"),
        ("T1^0^r", "detail_data[0].amount"),
        ("T1^1.001^r", "detail_data[0].amount"),
        ("T1^1^r$$1^r$$1^r", "detail_data[0]"),
        ("T1^1^r$$1", "detail_data[0].sub_trade"),
        ("T1^1^r$1", "detail_data[0].reason"),
        ("T1^1^r$1^r", "detail_data[0]"),
        ("T1^1^r$$$1^r", "detail_data[0].sub_trade.amount"),
        ("T1^1^r|a^2088701892019087^b^2088701892019088^1", "detail_data[0].royalties[0]"),
        ("T1^1^r|^^b^2088701892019088^1^r", "detail_data[0].royalties[0].out"),
        ("T1^1^r|a@b.com^^^2088701892019088^0.001^r", "detail_data[0].royalties[0].amount"),
        ("T1^1^r#T1^2^r", "detail_data[1].trade_no"),
    ],
)
def test_decode_detail_data_refuses_malformed_text(text: str, field: str) -> None:
    with refused(field):
        decode_detail_data(text)


@FAST
@given(st.data(), st.sampled_from(CHARSETS))
def test_detail_data_round_trips(data: st.DataObject, charset: str) -> None:
    details = data.draw(DETAILS[charset])
    text = encode_detail_data(details, charset)
    assert decode_detail_data(text, charset) == details
    assert text.count("#") + 1 == int(batch_num(details)) == len(details)


@FAST
@given(st.text() | mutated(st.sampled_from([text for text, _ in DOC_DETAILS])), st.sampled_from(CHARSETS))
def test_decode_detail_data_fails_only_with_format_error(text: str, charset: str) -> None:
    details = only_format_errors(decode_detail_data, text, charset)
    if details is not None:  # whatever it accepts is a stable, valid batch
        assert decode_detail_data(encode_detail_data(details, charset), charset) == details


@FAST
@given(st.data(), st.sampled_from(CHARSETS))
def test_mutated_detail_data_fails_only_with_format_error(data: st.DataObject, charset: str) -> None:
    text = data.draw(mutated(DETAILS[charset].map(lambda d: encode_detail_data(d, charset))))
    details = only_format_errors(decode_detail_data, text, charset)
    if details is not None:
        assert decode_detail_data(encode_detail_data(details, charset), charset) == details


# --- result_details ------------------------------------------------------------------------------


def test_fee_result_example() -> None:
    [item] = decode_result_details(DOC_FEE_SAMPLE)
    assert item == ResultItem(
        TradeResult("2010031906272929", Decimal("80"), "SUCCESS"),
        ChargeResult("jax_chuanhang@alipay.com", "2088101003147483", Decimal("0.01"), "SUCCESS"),
    )
    assert item.succeeded
    assert encode_result_details([item]) == DOC_FEE_SAMPLE.replace("^80^", "^80.00^")


def test_failed_detail_result_example() -> None:
    items = decode_result_details("2010031206252779^10.00^NOT_THIS_PARTNERS_TRADE#2010031206252780^0^SUCCESS")
    assert [(i.trade.code, i.trade.amount, i.succeeded) for i in items] == [
        ("NOT_THIS_PARTNERS_TRADE", Decimal("10"), False),
        ("SUCCESS", Decimal("0"), True),
    ]


@pytest.mark.parametrize(
    ("tail", "is_dback", "dback_result"),
    [
        ("", None, None),
        ("^true^S", True, "S"),
        ("^true^F", True, "F"),
        ("^true^P", True, "P"),
        ("^false^null", False, None),
    ],
)
def test_trade_results_have_3_or_5_fields(tail: str, is_dback: bool | None, dback_result: str | None) -> None:
    text = f"2010031206252779^10.00^SUCCESS{tail}"
    [item] = decode_result_details(text)
    assert (item.trade.is_dback, item.trade.dback_result) == (is_dback, dback_result)
    assert encode_result_details([item]) == text


def test_royalty_and_sub_trade_split_in_the_documented_order() -> None:
    text = (
        "T1^1.00^SUCCESS$fee@alipay.com^^0.10^SUCCESS|a@b.com^^^2088101568345155^0.50^DUP_ROYALTY_REFUND_ITEM"
        "|^2088102210397302^c.d@e.com^^0.20^SUCCESS$$1.00^0.00^SUCCESS"
    )
    [item] = decode_result_details(text)
    assert item.charge == ChargeResult("fee@alipay.com", "", Decimal("0.10"), "SUCCESS")
    assert [r.code for r in item.royalties] == ["DUP_ROYALTY_REFUND_ITEM", "SUCCESS"]
    assert item.sub_trade == SubTradeResult(Decimal("1"), Decimal("0"), "SUCCESS")
    assert encode_result_details([item]) == text
    [no_charge] = decode_result_details("T1^1.00^SUCCESS$$1.00^1.00^SUCCESS")  # `$$` is not an empty charge
    assert no_charge.charge is None and no_charge.sub_trade is not None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "result_details"),
        ("T1^1^SUCCESS^true", "result_details[0]"),
        ("T1^1^SUCCESS^TRUE^S", "result_details[0].is_dback"),
        ("T1^1^SUCCESS^true^X", "result_details[0].is_dback"),
        ("T1^1^SUCCESS$a@b.com^2088101003147483^1", "result_details[0].charge"),
        ("T1^1^SUCCESS$^^1^SUCCESS", "result_details[0].charge"),
        ("T1^1^SUCCESS$a@b.com^2088101003147483^1^SUCCESS$x", "result_details[0].charge.code"),
        ("T1^-1^SUCCESS", "result_details[0].amount"),
        ("T1^1^", "result_details[0].code"),
        ("T1^1^SUCCESS$$1^1", "result_details[0].sub_trade"),
        ("T1^1^SUCCESS#", "result_details[1]"),
        ("T1^1^SUCCESS|a^2088101003147483^b^^1", "result_details[0].royalties[0]"),
        ("T1^1^SUCCESS$$1^1^SUCCESS$$1^1^SUCCESS", "result_details[0]"),
        ("T1^1^SUCCESS$a@b.com^^x^SUCCESS", "result_details[0].charge.amount"),
        ("T1^1^SUCCESS|a@b.com^^b@c.com^^x^SUCCESS", "result_details[0].royalties[0].amount"),
        ("T1^1^SUCCESS$$x^1^SUCCESS", "result_details[0].sub_trade.amount"),
        ("T1^1^SUCCESS$$1^x^SUCCESS", "result_details[0].sub_trade.refundable_amount"),
        ("T1^1^SUCCESS|a@b.com^^b@c.com^^1^", "result_details[0].royalties[0].code"),
        ("T1^1^SUCCESS$$1^1^", "result_details[0].sub_trade.code"),
    ],
)
def test_decode_result_details_refuses_malformed_text(text: str, field: str) -> None:
    with refused(field):
        decode_result_details(text)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("T-1^1^SUCCESS", "result_details[0].trade_no"),
        ("T1^1^SUCCESS$^^1^SUCCESS", "result_details[0].charge"),
        ("T1^1^SUCCESS|^^b@c.com^^1^SUCCESS", "result_details[0].royalties[0].out"),
        ("T1^1^SUCCESS|a@b.com^^^^1^SUCCESS", "result_details[0].royalties[0].in"),
        ("T1^1^SUCCESS|a@b.com^^b@c.com^^1^SUCCESS|^^b@c.com^^1^SUCCESS", "result_details[0].royalties[1].out"),
    ],
)
def test_a_result_naming_no_party_or_a_bad_trade_is_an_illegal_argument_at_its_place(text: str, field: str) -> None:
    with refused(field, "ILLEGAL_ARGUMENT"):
        decode_result_details(text)


def test_an_empty_list_and_a_second_sub_trade_are_refused_with_their_place_and_code() -> None:
    with refused("result_details", "ILLEGAL_ARGUMENT"):
        encode_result_details([])
    with refused("detail_data", "DETAIL_DATA_FORMAT_ERROR"):
        decode_detail_data("")
    with refused("detail_data[0]", "DETAIL_DATA_FORMAT_ERROR"):
        decode_detail_data("T1^1^r$$1^r$$1^r")


@pytest.mark.parametrize("serial", ["X00", "XXX", "0X0"])
def test_a_serial_of_x_and_zeros_is_not_all_zeros(serial: str) -> None:
    assert validate_batch_no("20240315" + serial) == "20240315" + serial
    assert batch_no_date("20240315" + serial) == date(2024, 3, 15)


@pytest.mark.parametrize(
    ("trade", "field"),
    [
        (TradeResult("T1", Decimal("1"), "SUCCESS", None, "S"), "result_details[0].dback_result"),
        (TradeResult("T1", Decimal("1"), "SUCCESS", 1, "S"), "result_details[0].is_dback"),  # type: ignore[arg-type]
        (TradeResult("T1", Decimal("1"), "SUCCESS", True, "null"), "result_details[0].is_dback"),
        (TradeResult("T1", Decimal("-1"), "SUCCESS"), "result_details[0].amount"),
        (TradeResult("T1", Decimal("1"), "A^B"), "result_details[0].code"),
    ],
)
def test_encode_result_details_refuses_invalid_items(trade: TradeResult, field: str) -> None:
    with refused(field):
        encode_result_details([ResultItem(trade)])


@FAST
@given(st.lists(result_items, min_size=1, max_size=3))
def test_result_details_round_trip(items: list[ResultItem]) -> None:
    assert decode_result_details(encode_result_details(items)) == items


@FAST
@given(st.text() | mutated(st.sampled_from([DOC_FEE_SAMPLE, DOC_QUERY_SAMPLE.partition("^")[2]])))
def test_decode_result_details_fails_only_with_format_error(text: str) -> None:
    items = only_format_errors(decode_result_details, text)
    if items is not None:
        assert decode_result_details(encode_result_details(items)) == items


@FAST
@given(mutated(st.lists(result_items, min_size=1, max_size=2).map(encode_result_details)))
def test_mutated_result_details_fail_only_with_format_error(text: str) -> None:
    items = only_format_errors(decode_result_details, text)
    if items is not None:
        assert decode_result_details(encode_result_details(items)) == items


# --- query result_details ------------------------------------------------------------------------


def test_doc_query_sample() -> None:
    [item] = decode_query_result_details(DOC_QUERY_SAMPLE)
    assert item == QueryItem(
        "201012300001",
        ResultItem(
            TradeResult("2010123016346858", Decimal("0.02"), "SUCCESS"),
            royalties=(
                RoyaltyResult(
                    "zen_gwen@hotmail.com",
                    "2088102210397302",
                    "alipay-test03@alipay.com",
                    "2088101568345155",
                    Decimal("0.01"),
                    "SUCCESS",
                ),
            ),
            sub_trade=SubTradeResult(Decimal("10"), Decimal("10"), "SUCCESS"),
        ),
    )
    assert encode_query_result_details([item]) == DOC_QUERY_SAMPLE


def test_query_items_may_carry_the_dback_fields() -> None:
    [item] = decode_query_result_details("20121204001^2012111620984834^0.01^SUCCESS^true^null")
    assert (item.batch_no, item.result.trade.is_dback, item.result.trade.dback_result) == (
        "20121204001",
        True,
        None,
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("2012111620984834^0.01^SUCCESS", "result_details[0]"),  # 20121116 + serial: a well-formed batch_no
        ("trade^2012111620984834^0.01^SUCCESS", "result_details[0].batch_no"),
        ("20121204000^2012111620984834^0.01^SUCCESS", "result_details[0].batch_no"),
        ("20121204001", "result_details[0]"),
        ("20121204001^2012111620984834^0.01", "result_details[0]"),
    ],
)
def test_decode_query_result_details_refuses_malformed_text(text: str, field: str) -> None:
    with refused(field):
        decode_query_result_details(text)


@FAST
@given(st.lists(query_items, min_size=1, max_size=3))
def test_query_result_details_round_trip(items: list[QueryItem]) -> None:
    assert decode_query_result_details(encode_query_result_details(items)) == items


@FAST
@given(
    st.text()
    | mutated(st.just(DOC_QUERY_SAMPLE))
    | mutated(st.lists(query_items, min_size=1, max_size=3).map(encode_query_result_details))
)
def test_decode_query_result_details_fails_only_with_format_error(text: str) -> None:
    items = only_format_errors(decode_query_result_details, text)
    if items is not None:
        assert decode_query_result_details(encode_query_result_details(items)) == items


# --- unfreezed_details ---------------------------------------------------------------------------


def test_unfreezed_details_have_7_fields() -> None:
    text = "U1^F1^5.00^2010031206252779^2024-03-15 10:00:00^SUCCESS^SUCCESS"
    [item] = decode_unfreezed_details(text)
    assert item == UnfreezedDetail(
        "U1", "F1", Decimal("5"), "2010031206252779", "2024-03-15 10:00:00", "SUCCESS", "SUCCESS"
    )
    assert encode_unfreezed_details([item]) == text
    with refused("unfreezed_details[0]"):
        decode_unfreezed_details("U1^F1^5.00^2010031206252779^2024-03-15 10:00:00^SUCCESS")


@FAST
@given(st.lists(unfreezed_items, min_size=1, max_size=3))
def test_unfreezed_details_round_trip(items: list[UnfreezedDetail]) -> None:
    assert decode_unfreezed_details(encode_unfreezed_details(items)) == items


@FAST
@given(st.text() | mutated(st.lists(unfreezed_items, min_size=1, max_size=2).map(encode_unfreezed_details)))
def test_decode_unfreezed_details_fails_only_with_format_error(text: str) -> None:
    only_format_errors(decode_unfreezed_details, text)


# --- synchronous ack -----------------------------------------------------------------------------

GBK_DECLARATION = b'<?xml version="1.0" encoding="GBK"?>'


def test_render_ack_writes_gbk_xml() -> None:
    assert render_ack("T") == GBK_DECLARATION + b"<alipay><is_success>T</is_success></alipay>"
    assert render_ack("F", "BATCH_NO_FORMAT_ERROR") == (
        GBK_DECLARATION + b"<alipay><is_success>F</is_success><error>BATCH_NO_FORMAT_ERROR</error></alipay>"
    )
    assert parse_ack(render_ack("P")) == Ack("P")


@pytest.mark.parametrize(
    ("status", "error"), [("F", None), ("T", "SYSTEM_ERROR"), ("X", None), ("F", "<x/>")]
)
def test_render_ack_refuses_inconsistent_answers(status: str, error: str | None) -> None:
    with refused("ack"):
        render_ack(status, error)


@pytest.mark.parametrize(
    ("body", "ack"),
    [
        (
            b'<?xml version="1.0" encoding="GBK" ?><alipay><is_success>F</is_success>'
            b"<error>BATCH_NO_FORMAT_ERROR</error></alipay>",
            Ack("F", "BATCH_NO_FORMAT_ERROR"),
        ),
        (
            b'<?xml version="1.0" encoding="utf-8"?>\n<alipay>\n  <is_success>T</is_success>\n</alipay>\n',
            Ack("T"),
        ),
        (b"<alipay><is_success>P</is_success></alipay>", Ack("P")),
        (b"\xef\xbb\xbf<alipay><is_success>T</is_success></alipay>", Ack("T")),
    ],
)
def test_parse_ack_reads_alipay_answers(body: bytes, ack: Ack) -> None:
    assert parse_ack(body) == ack


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"success",
        b"<html><body>502 Bad Gateway</body></html>",
        b"<alipay></alipay>",
        b"<alipay><is_success>Y</is_success></alipay>",
        b"<alipay><is_success>F</is_success></alipay>",
        b"<alipay><is_success>T</is_success><is_success>F</is_success></alipay>",
        b"<alipay><is_success>T</is_success>",
        b'<?xml version="1.0" encoding="x-unknown"?><alipay/>',
        b'<?xml version="1.0" encoding="utf-8"?><alipay><error>\xc4\xe3</error></alipay>',
        b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;">]><alipay><is_success>&y;</is_success></alipay>',
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><alipay><is_success>&x;</is_success></alipay>',
    ],
)
def test_parse_ack_refuses_anything_else(body: bytes) -> None:
    with refused("ack"):
        parse_ack(body)


@FAST
@given(
    st.binary()
    | st.text().map(str.encode)
    | mutated(st.sampled_from([render_ack("T").decode(), render_ack("F", "SYSTEM_ERROR").decode()])).map(
        lambda t: t.encode("utf-8", "surrogatepass")  # a lone surrogate inserted by `mutated`: bytes no UTF-8 has
    )
)
@example(render_ack("T").replace(b"T", "\ud800".encode("utf-8", "surrogatepass"), 1))
def test_parse_ack_fails_only_with_format_error(body: bytes) -> None:
    only_format_errors(parse_ack, body)


# --- refund query answer -------------------------------------------------------------------------

QUERY_PLAIN = (
    "is_success=T&result_details=20121204001^2012111620984834^0.01^TRADE_HAS_CLOSED"
    "#20121122001^2012111620984834^0.01^SUCCESS"
)


def test_parse_query_response_plain_text() -> None:
    response = parse_query_response(QUERY_PLAIN.encode())
    assert response.is_success and response.error_code is None
    assert [(i.batch_no, i.result.trade.code) for i in response.items] == [
        ("20121204001", "TRADE_HAS_CLOSED"),
        ("20121122001", "SUCCESS"),
    ]
    assert render_query_response(response) == QUERY_PLAIN
    assert parse_query_response("is_success=F&error_code=REFUND_NOT_EXIST\n") == QueryResponse(
        False, error_code="REFUND_NOT_EXIST"
    )


def test_parse_query_response_accepts_percent_encoded_values() -> None:
    key, _, value = QUERY_PLAIN.partition("&")[2].partition("=")
    encoded = f"is_success=T&{key}={quote(value, safe='')}&sign=abc&sign_type=MD5"
    assert parse_query_response(encoded) == parse_query_response(QUERY_PLAIN)


def test_parse_query_response_xml() -> None:
    body = (
        GBK_DECLARATION
        + b"<alipay><is_success>T</is_success><result_details>"
        + DOC_QUERY_SAMPLE.encode()
        + b"</result_details></alipay>"
    )
    assert parse_query_response(body) == QueryResponse(
        True, tuple(decode_query_result_details(DOC_QUERY_SAMPLE))
    )
    failed = "<alipay><is_success>F</is_success><error>REFUND_NOT_EXIST</error></alipay>"
    assert parse_query_response(failed) == QueryResponse(False, error_code="REFUND_NOT_EXIST")


def test_query_response_without_items() -> None:
    assert render_query_response(QueryResponse(True)) == "is_success=T"
    assert (
        parse_query_response("is_success=T")
        == parse_query_response("is_success=T&result_details=")
        == (QueryResponse(True))
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("", "query"),
        ("is_success", "query"),
        ("result_details=x", "is_success"),
        ("is_success=X", "is_success"),
        ("is_success=F", "error_code"),
        ("is_success=T&is_success=F", "query"),
        ("is_success=T&result_details=%FF", "query.result_details"),
        (b"is_success=\xff", "query"),
        ("is_success=T&result_details=20121204001", "result_details[0]"),
        ("<alipay><x/></alipay>", "is_success"),
        ("<response/>", "query"),
        ("<alipay>", "query"),
    ],
)
def test_parse_query_response_refuses_malformed_answers(body: str | bytes, field: str) -> None:
    with refused(field):
        parse_query_response(body)


@pytest.mark.parametrize(
    "response",
    [
        QueryResponse(True, error_code="SYSTEM_ERROR"),
        QueryResponse(False),
        QueryResponse(False, tuple(decode_query_result_details(DOC_QUERY_SAMPLE)), "SYSTEM_ERROR"),
    ],
)
def test_render_query_response_refuses_inconsistent_answers(response: QueryResponse) -> None:
    with pytest.raises(AlipayFormatError):
        render_query_response(response)


@FAST
@given(st.lists(query_items, max_size=3), st.sampled_from(CHARSETS))
def test_query_response_round_trips(items: list[QueryItem], charset: str) -> None:
    response = QueryResponse(True, tuple(items))
    assert parse_query_response(render_query_response(response).encode(charset), charset) == response


@FAST
@given(
    st.binary()
    | st.text()
    | mutated(
        st.sampled_from(
            [QUERY_PLAIN, "<alipay><is_success>F</is_success><error>REFUND_NOT_EXIST</error></alipay>"]
        )
    ),
    st.sampled_from(CHARSETS),
)
def test_parse_query_response_fails_only_with_format_error(body: str | bytes, charset: str) -> None:
    only_format_errors(parse_query_response, body, charset)


# --- error codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "where", "final"),
    [
        ("SYSTEM_ERROR", {"S", "D"}, False),
        ("SESSION_TIMEOUT", {"S"}, False),
        ("BATCH_REFUND_LOCK_ERROR", {"D"}, False),
        ("DUPLICATE_BATCH_NO", {"S"}, False),
        ("TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH", {"D"}, True),
        ("BATCH_NO_FORMAT_ERROR", {"S"}, True),
        ("ILLEGAL_SIGN", {"S"}, True),
        ("NOT_THIS_PARTNERS_TRADE", {"D"}, True),
        ("ILLEGAL_DYN_MD5_KEY", {"S"}, True),
        ("NANHANG_REFUND_CHARGE_AMOUNT_ERROR", {"D"}, True),
    ],
)
def test_error_code_placement_and_retry_decisions(code: str, where: set[str], final: bool) -> None:
    entry = error_code(code)
    assert (entry.code, entry.where, entry.final) == (code, where, final) and entry.meaning


def test_error_code_table_is_the_doc_table() -> None:
    assert len(ERROR_CODES) == 85  # 84 in §3.2 (combined rows split) + REFUND_NOT_EXIST of §6
    assert all(
        key == entry.code and entry.where and entry.where <= {"S", "D"} for key, entry in ERROR_CODES.items()
    )
    for not_mapi in (
        "LLEGAL_PARTNER_EXTERFACE",
        "ATCH_REFUND_STATUS_ERROR",
        "SELLER_BALANCE_NOT_ENOUGH",
        "TRADE_NOT_EXIST",
        "SUCCESS",
    ):
        assert not_mapi not in ERROR_CODES
    with pytest.raises(TypeError):
        ERROR_CODES["SYSTEM_ERROR"] = ERROR_CODES["ILLEGAL_SIGN"]  # type: ignore[index]


def test_unknown_error_codes_are_final() -> None:
    assert error_code("SOMETHING_NEW") == error_code("SOMETHING_NEW")
    assert (error_code("SOMETHING_NEW").meaning, error_code("SOMETHING_NEW").final) == ("unknown code", True)
    assert error_code("SOMETHING_NEW").where == {"S", "D"}


def test_codes_the_codec_raises_are_alipay_codes() -> None:
    raised = set()
    for call in (
        lambda: validate_batch_no("x"),
        lambda: parse_alipay_time("x"),
        lambda: decode_detail_data("x"),
        lambda: encode_detail_data([_trade(), _trade()]),
        lambda: validate_reason("😀", "gbk"),
        lambda: validate_reason("a" * 300),
        lambda: clean_reason("x", "latin-1"),
        lambda: parse_ack(b""),
    ):
        with pytest.raises(AlipayFormatError) as caught:
            call()
        raised.add(caught.value.code)
    assert len(raised) == 8 and raised <= set(ERROR_CODES)


# --- notifies ------------------------------------------------------------------------------------


def test_parse_refund_notify_doc_example() -> None:
    notify = parse_refund_notify(DOC_NOTIFY)
    assert notify.notify_time == datetime(2009, 8, 12, 11, 8, 32, tzinfo=BEIJING)
    assert (notify.notify_id, notify.batch_no, notify.success_num) == (
        "70fec0c2730b27528665af4517c27b95",
        "20060702001",
        1,
    )
    assert notify.results == (ResultItem(TradeResult("2010031206252779", Decimal("10"), "SUCCESS")),)
    assert notify.unfreezed == ()


def test_parse_refund_notify_with_failures_and_unfreezed() -> None:
    params = DOC_NOTIFY | {
        "success_num": "1",
        "result_details": f"{DOC_FEE_SAMPLE}#2010031206252779^10.00^NOT_THIS_PARTNERS_TRADE",
        "unfreezed_details": "U1^F1^5.00^2010031906272929^2024-03-15 10:00:00^SUCCESS^SUCCESS",
    }
    notify = parse_refund_notify(params)
    assert [item.succeeded for item in notify.results] == [True, False]
    assert notify.unfreezed[0].amount == Decimal("5")
    assert parse_refund_notify(params | {"unfreezed_details": ""}).unfreezed == ()


@pytest.mark.parametrize(
    "name", ["notify_type", "notify_time", "notify_id", "batch_no", "success_num", "result_details"]
)
def test_parse_refund_notify_requires_each_parameter(name: str) -> None:
    for params in ({k: v for k, v in DOC_NOTIFY.items() if k != name}, DOC_NOTIFY | {name: ""}):
        with refused(name):
            parse_refund_notify(params)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"notify_type": "trade_status_sync"}, "notify_type"),
        ({"success_num": "0"}, "success_num"),
        ({"success_num": "2"}, "success_num"),
        ({"success_num": "-1"}, "success_num"),
        ({"success_num": "1.0"}, "success_num"),
        ({"notify_time": "2009-08-12T11:08:32"}, "notify_time"),
        ({"batch_no": "20060702000"}, "batch_no"),
        ({"notify_id": "has space"}, "notify_id"),
        ({"result_details": "2010031206252779^10.00"}, "result_details[0]"),
        ({"unfreezed_details": "U1^F1"}, "unfreezed_details[0]"),
        ({"batch_no": 20060702001}, "batch_no"),
    ],
)
def test_parse_refund_notify_refuses_invalid_parameters(change: dict[str, Any], field: str) -> None:
    with refused(field):
        parse_refund_notify(DOC_NOTIFY | change)


def test_success_num_counts_trade_results_only() -> None:
    details = (
        "T1^1.00^SUCCESS|a@b.com^^^2088101568345155^0.50^REASON_REFUND_ROYALTY_ERROR#T2^1.00^TRADE_NOT_EXISTS"
    )
    assert parse_refund_notify(DOC_NOTIFY | {"result_details": details, "success_num": "1"}).success_num == 1


@FAST
@given(
    st.dictionaries(st.sampled_from(NOTIFY_KEYS), st.text() | noise),
    st.sampled_from(NOTIFY_KEYS),
    mutated(st.sampled_from(list(DOC_NOTIFY.values()))),
)
def test_parse_refund_notify_fails_only_with_format_error(
    changes: dict[str, str], key: str, value: str
) -> None:
    only_format_errors(parse_refund_notify, DOC_NOTIFY | {key: value})
    only_format_errors(parse_refund_notify, DOC_NOTIFY | changes)


def test_parse_dback_notify() -> None:
    notify = parse_dback_notify(DBACK_NOTIFY)
    assert (notify.batch_no, notify.trade_no, notify.refund_id, notify.status) == (
        "20100312R001",
        "2010031206252779",
        "R2010031206252779",
        "S",
    )
    assert (notify.card_no, notify.bank_name, notify.notify_time) == ("6222****1234", "招商银行", None)
    timed = parse_dback_notify(DBACK_NOTIFY | {"notify_time": "2010-03-12 10:00:00", "status": "I"})
    assert timed.notify_time == datetime(2010, 3, 12, 2, tzinfo=UTC) and timed.status == "I"
    bare = parse_dback_notify({k: v for k, v in DBACK_NOTIFY.items() if k not in ("card_no", "bank_name")})
    assert (bare.card_no, bare.bank_name) == ("", "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "X"}, "status"),
        ({"status": ""}, "status"),
        ({"refund_batch_no": ""}, "refund_batch_no"),
        ({"refund_batch_no": "2010"}, "refund_batch_no"),
        ({"trade_no": "a-b"}, "trade_no"),
        ({"refund_id": ""}, "refund_id"),
        ({"refund_id": "a-b"}, "refund_id"),
        ({"notify_id": ""}, "notify_id"),
        ({"bank_name": "a^b"}, "bank_name"),
        ({"notify_time": "yesterday"}, "notify_time"),
    ],
)
def test_parse_dback_notify_refuses_invalid_parameters(change: dict[str, str], field: str) -> None:
    with refused(field):
        parse_dback_notify(DBACK_NOTIFY | change)


@FAST
@given(
    st.sampled_from([*DBACK_NOTIFY, "notify_time"]),
    st.text() | mutated(st.sampled_from(list(DBACK_NOTIFY.values()))),
)
def test_parse_dback_notify_fails_only_with_format_error(key: str, value: str) -> None:
    only_format_errors(parse_dback_notify, DBACK_NOTIFY | {key: value})
