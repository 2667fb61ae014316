"""The password refund's request (`refund_fastpay_by_platform_pwd`, §1.5): pure, so checked here without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from refund_adapter.channels.mapi.detail_data import RefundDetail, RoyaltyRefund, SubTradeRefund, TradeRefund
from refund_adapter.channels.mapi.pwd import Seller, link, pwd_request
from refund_adapter.channels.mapi.wire import AlipayFormatError
from refund_adapter.channels.signing import MD5Scheme, signed, verify

MOMENT = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)  # 10:30 in Beijing
DETAIL = RefundDetail(TradeRefund("2026120722000000000001", Decimal("5.00"), "协商退款"))


def request(**overrides: object) -> dict[str, str]:
    settings: dict[str, object] = {"partner": "2088101122136241", "charset": "utf-8", "batch_no": "20261207T000001",
                                   "moment": MOMENT, "details": [DETAIL], "notify_url": "https://m.example/notify",
                                   "seller": Seller(user_id="2088101122136241")}
    settings.update(overrides)
    return pwd_request(**settings)  # type: ignore[arg-type]


def test_the_request_names_the_seller_and_dates_the_refund_in_beijing() -> None:
    params = request()
    assert params == {
        "service": "refund_fastpay_by_platform_pwd", "partner": "2088101122136241", "_input_charset": "utf-8",
        "notify_url": "https://m.example/notify", "batch_no": "20261207T000001", "refund_date": "2026-12-07 10:30:00",
        "batch_num": "1", "detail_data": "2026120722000000000001^5.00^协商退款", "seller_user_id": "2088101122136241"}


def test_the_user_id_wins_over_the_email_and_one_is_required() -> None:
    assert request(seller=Seller(user_id="2088101122136241", email="a@example.com"))["seller_user_id"]
    assert request(seller=Seller(email="a@example.com"))["seller_email"] == "a@example.com"
    with pytest.raises(AlipayFormatError) as refused:
        request(seller=Seller())
    assert refused.value.code == "ILLEGAL_ARGUMENT"


@pytest.mark.parametrize("detail", [
    RefundDetail(DETAIL.trade, royalties=(RoyaltyRefund("a", "2088000000000001", "b", "2088000000000002",
                                                        Decimal("1.00"), "r"),)),
    RefundDetail(DETAIL.trade, sub_trade=SubTradeRefund(Decimal("1.00"), "r")),
])
def test_royalty_and_sub_trade_parts_are_refused(detail: RefundDetail) -> None:
    with pytest.raises(AlipayFormatError) as refused:
        request(details=[DETAIL, detail])
    assert refused.value.code == "PWD_REFUND_NOT_ALLOW_ROYALTY" and refused.value.field == "detail_data[1]"


def test_a_batch_no_of_another_beijing_day_is_refused() -> None:
    with pytest.raises(AlipayFormatError) as refused:
        request(moment=MOMENT + timedelta(hours=14))  # 00:30 on the 8th in Beijing
    assert refused.value.code == "BATCH_NO_FORMAT_ERROR"


def test_the_link_carries_the_signed_values_encoded_in_the_charset() -> None:
    scheme = MD5Scheme("k" * 32, "gbk")
    wire = signed(request(charset="gbk"), scheme)
    url = link("https://mapi.alipay.com/gateway.do", wire, "gbk")
    assert url.startswith("https://mapi.alipay.com/gateway.do?")
    back = dict(parse_qsl(urlsplit(url).query, encoding="gbk"))
    assert back == wire and verify(back, scheme)
