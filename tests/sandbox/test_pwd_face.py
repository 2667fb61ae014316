"""The sandbox's password-refund face over loopback HTTP: what a signed `refund_fastpay_by_platform_pwd` link
shows, what it refuses with Alipay's codes, and that a confirmed batch is refunded and notified as a nopwd one."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest

from refund_adapter.channels.mapi.pwd import SERVICE_PWD_REFUND
from refund_adapter.channels.mapi.results import decode_result_details
from refund_adapter.channels.signing import signed
from refund_adapter.sandbox import RunningSandbox, run_sandbox

from . import kit
from .kit import PARTNER, eventually, merchant_scheme, new_batch_no, refund_params, sandbox_config, seed

alipay_http = kit.alipay_http
notify_receiver = kit.notify_receiver
PASSWORD = "246810"
ROYALTY = "a@example.com^2088000000000001^b@example.com^2088000000000002^0.50^分润"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox(sandbox_config(payment_password=PASSWORD, nopwd_permission=False)) as running:
        seed(running, "2026120722000000000001")
        yield running


def link(sandbox: RunningSandbox, detail_data: str, **overrides: str) -> str:
    params = refund_params(new_batch_no(), detail_data, service=SERVICE_PWD_REFUND, seller_user_id=PARTNER)
    params.update(overrides)
    return sandbox.url + "?" + urlencode(signed(params, merchant_scheme()))


async def fetch(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


def code(page: str) -> str | None:
    found = re.search(r'id="error"><code>([A-Z_]+)</code>', page)
    return found.group(1) if found else None


async def confirm(http: aiohttp.ClientSession, sandbox: RunningSandbox, page: str, password: str = PASSWORD) -> str:
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token is not None, page
    async with http.post(sandbox.base_url + "/pwd/confirm", data={"token": token.group(1), "password": password}) as r:
        return await r.text()


async def test_a_confirmed_batch_is_refunded_and_notified_as_a_nopwd_one(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox, notify_receiver: kit.NotifyReceiver
) -> None:
    """Without the nopwd contract (`nopwd_permission=False`): the password refund is every merchant's."""
    url = link(sandbox, "2026120722000000000001^12.00^退货", notify_url=notify_receiver.url())
    page = await fetch(alipay_http, url)
    assert "12.00" in page and "退货" in page and 'type="password"' in page
    assert sandbox.state.batches == {}  # opening the link changes nothing
    assert code(await confirm(alipay_http, sandbox, page, "wrong")) == "PASSWORD_ERROR"
    assert 'id="result"' in await confirm(alipay_http, sandbox, page)
    (notify,) = await eventually(lambda: notify_receiver.at(), "the refund notify")
    assert notify.signature_ok and notify.params["notify_type"] == "batch_refund_notify"
    (item,) = decode_result_details(notify.params["result_details"])
    assert (item.trade.trade_no, str(item.trade.amount), item.trade.code) == ("2026120722000000000001", "12.00",
                                                                               "SUCCESS")
    assert "unfreezed_details" not in notify.params
    assert code(await confirm(alipay_http, sandbox, page)) == "ILLEGAL_ARGUMENT"  # the page is spent


@pytest.mark.parametrize(("detail_data", "overrides", "expected"), [
    (f"2026120722000000000001^1.00^r|{ROYALTY}", {}, "PWD_REFUND_NOT_ALLOW_ROYALTY"),
    ("2026120722000000000001^1.00^r$$0.50^sub", {}, "PWD_REFUND_NOT_ALLOW_ROYALTY"),
    ("2026120722000000000001^1.00^r", {"seller_user_id": ""}, "ILLEGAL_ARGUMENT"),
    ("2026120722000000000001^1.00^r", {"seller_user_id": "2088000000000009"}, "SELLER_INFO_NOT_EXIST"),
    ("2026120722000000000001^1.00^r", {"batch_no": "20200101T000001"}, "BATCH_NO_FORMAT_ERROR"),
    ("2026120722000000000001^1.00^r", {"refund_date": "2020-01-01 10:00:00"}, "REFUND_DATE_ERROR"),
    ("2026120722000000000001^1.00^r", {"partner": "2088000000000009"}, "ILLEGAL_PARTNER"),
])
async def test_a_link_alipay_would_refuse_shows_its_code(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox, detail_data: str, overrides: dict[str, str],
    expected: str,
) -> None:
    assert code(await fetch(alipay_http, link(sandbox, detail_data, **overrides))) == expected


async def test_a_seller_email_is_enough(alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox) -> None:
    page = await fetch(alipay_http, link(sandbox, "2026120722000000000001^1.00^r", seller_user_id="",
                                         seller_email="refunds@example.com"))
    assert "refunds@example.com" in page and code(page) is None


async def test_a_tampered_link_is_refused(alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox) -> None:
    url = link(sandbox, "2026120722000000000001^1.00^r").replace("1.00", "9.00")
    assert code(await fetch(alipay_http, url)) == "ILLEGAL_SIGN"
