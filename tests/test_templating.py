"""The dashboard's helpers: money as `¥1,234.50` from Decimals only, times in the operator's zone, and the language
chosen from the switch's cookie or `Accept-Language`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from refund_adapter.web.i18n import LANGUAGE_COOKIE, load_translations, request_locale
from refund_adapter.web.templating import local_time, money


def test_money_is_shown_in_yuan_with_separators_and_two_decimals() -> None:
    assert money(Decimal("1234.5")) == "¥1,234.50"
    assert money(Decimal("0.01")) == "¥0.01"
    assert money(Decimal("1000000")) == "¥1,000,000.00"
    assert money(Decimal("-20.00")) == "-¥20.00"
    assert money(Decimal("12.34"), "USD") == "US$12.34"  # a refund in another currency says so


@pytest.mark.parametrize("amount", [1234.5, 1234, "1234.50"])
def test_money_refuses_anything_but_a_decimal(amount: Any) -> None:
    with pytest.raises(TypeError):
        money(amount)


def test_times_are_shown_in_the_operators_zone() -> None:
    moment = datetime(2026, 12, 7, 16, 30, 5, tzinfo=UTC)
    assert local_time(moment, ZoneInfo("Asia/Shanghai")) == "2026-12-08 00:30:05 +0800"  # past Beijing's midnight
    assert local_time(moment, ZoneInfo("UTC")) == "2026-12-07 16:30:05 +0000"
    assert local_time(moment, None) == moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")  # the machine's zone
    with pytest.raises(ValueError):
        local_time(datetime(2026, 12, 7, 16, 30), ZoneInfo("UTC"))  # naive: which zone would it be in?


def request(accept_language: str | None = None, cookie: str | None = None) -> Any:
    headers = {} if accept_language is None else {"Accept-Language": accept_language}
    return SimpleNamespace(headers=headers, cookies={} if cookie is None else {LANGUAGE_COOKIE: cookie})


@pytest.mark.parametrize(("header", "expected"), [
    (None, "en"),
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh_Hans"),
    ("zh", "zh_Hans"),
    ("zh-Hans-SG", "zh_Hans"),
    ("en-GB,zh-CN;q=0.5", "en"),
    ("en;q=0.2, zh-CN;q=0.8", "zh_Hans"),  # by weight, not by order
    ("zh-TW,zh-Hant;q=0.9", "en"),  # Traditional Chinese is not offered: English rather than the wrong script
    ("zh-TW, zh-CN;q=0.5", "zh_Hans"),
    ("fr-FR, de;q=0.9", "en"),
    ("zh-CN;q=0, en;q=0.1", "en"),  # q=0: not wanted
    ("zh-CN;q=abc", "en"),
    ("*", "en"),
    (";;,,q=1,\udcff, -", "en"),
])
def test_accept_language_chooses_the_language(header: str | None, expected: str) -> None:
    assert request_locale(request(header)) == expected


def test_the_switchs_cookie_wins_over_the_browser() -> None:
    assert request_locale(request("en-US", cookie="zh_Hans")) == "zh_Hans"
    assert request_locale(request("zh-CN", cookie="en")) == "en"
    assert request_locale(request("zh-CN", cookie="klingon")) == "zh_Hans"  # an unknown cookie is ignored


def test_the_catalogues_compile_and_translate() -> None:
    translations = load_translations()
    assert translations["zh_Hans"].gettext("Log in") == "登录"
    assert translations["en"].gettext("Log in") == "Log in"
