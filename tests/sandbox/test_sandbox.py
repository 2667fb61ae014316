"""The simulated MAPI gateway over real HTTP: every sync check, every per-detail code, notifies and faults."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from yarl import URL

from refund_adapter.channels.mapi.ack import Ack, parse_ack
from refund_adapter.channels.mapi.errors import error_code
from refund_adapter.channels.mapi.gateway import GatewayClient, NotifyVerification, SubmitKind
from refund_adapter.channels.mapi.notify import parse_dback_notify, parse_refund_notify
from refund_adapter.channels.signing import MD5Scheme, RSAScheme, SignatureScheme, signed
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import PROBLEM_TYPE, RunningSandbox, SandboxConfig, run_sandbox
from tests.sandbox import kit
from tests.sandbox.kit import (
    DEADLINE,
    MD5_KEY,
    PARTNER,
    NotifyReceiver,
    detail,
    eventually,
    make_client,
    merchant_scheme,
    new_batch_no,
    post_form,
    refund_params,
    rsa_keys,
    sandbox_config,
    seed,
    submit_raw,
)

# The kit's fixtures, shared by name (a conftest belongs to another part of the suite).
alipay_http = kit.alipay_http
alipay_sandbox = kit.alipay_sandbox
gateway_client = kit.gateway_client
notify_receiver = kit.notify_receiver

OTHER_PARTNER = "2088000000000009"
ROYALTY = "a@example.com^2088000000000001^b@example.com^2088000000000002^0.50^分润"


def _today(serial: str) -> str:
    return beijing_now().strftime("%Y%m%d") + serial


def _wrong_rsa() -> SignatureScheme:
    """Signed with Alipay's private key instead of the merchant's: a valid RSA signature by the wrong party."""
    keys = rsa_keys()
    return RSAScheme(keys.alipay, keys.alipay.public_key(), "utf-8")


@dataclass(frozen=True)
class Refusal:
    """A request broken in one way and the code it must be answered with."""

    id: str
    code: str
    overrides: dict[str, str] = field(default_factory=dict)  # before signing
    after_sign: dict[str, str] = field(default_factory=dict)  # tampering after signing
    config: dict[str, Any] = field(default_factory=dict)
    detail_data: str = "T1^1.00^协商退款"
    charset: str = "utf-8"
    scheme: SignatureScheme | None = None


REFUSALS = [
    Refusal("service", "ILLEGAL_SERVICE", {"service": "create_direct_pay_by_user"}),
    Refusal("no-service", "ILLEGAL_SERVICE", {"service": ""}),
    Refusal("partner", "ILLEGAL_PARTNER", {"partner": OTHER_PARTNER}),
    Refusal("no-permission", "ILLEGAL_PARTNER_EXTERFACE", config={"nopwd_permission": False}),
    Refusal("charset", "ILLEGAL_CHARSET", {"_input_charset": "iso-8859-1"}, detail_data="T1^1.00^x"),
    Refusal("dsa", "ILLEGAL_SIGN_TYPE", after_sign={"sign_type": "DSA"}),
    Refusal("lowercase-md5", "ILLEGAL_SIGN_TYPE", after_sign={"sign_type": "md5"}),
    Refusal("no-sign-type", "ILLEGAL_SIGN_TYPE", after_sign={"sign_type": ""}),
    Refusal(
        "rsa-not-configured",
        "ILLEGAL_SIGN_TYPE",
        config={"alipay_private_key": None, "merchant_public_key": None},
        scheme=merchant_scheme("RSA"),
    ),
    Refusal("md5-not-configured", "ILLEGAL_SIGN_TYPE", config={"md5_key": None}),
    Refusal("bad-md5", "ILLEGAL_SIGN", after_sign={"sign": "0" * 32}),
    Refusal("no-sign", "ILLEGAL_SIGN", after_sign={"sign": ""}),
    Refusal("tampered", "ILLEGAL_SIGN", after_sign={"detail_data": "T1^9.00^协商退款"}),
    Refusal("wrong-md5-key", "ILLEGAL_SIGN", scheme=MD5Scheme("another-key", "utf-8")),
    Refusal("wrong-rsa-key", "ILLEGAL_SIGN", scheme=_wrong_rsa()),
    Refusal("no-detail-data", "ILLEGAL_ARGUMENT", {"detail_data": ""}),
    Refusal("no-batch-no", "ILLEGAL_ARGUMENT", {"batch_no": ""}),
    Refusal("no-refund-date", "ILLEGAL_ARGUMENT", {"refund_date": ""}),
    Refusal("use-freeze", "ILLEGAL_ARGUMENT", {"use_freeze_amount": "X"}),
    Refusal("return-type", "ILLEGAL_ARGUMENT", {"return_type": "json"}),
    Refusal("batch-short", "BATCH_NO_FORMAT_ERROR", {"batch_no": "2024"}),
    Refusal("batch-chars", "BATCH_NO_FORMAT_ERROR", {"batch_no": _today("R-01")}),
    Refusal("batch-long", "BATCH_NO_FORMAT_ERROR", {"batch_no": _today("9" * 25)}),
    Refusal("batch-yesterday", "BATCH_NO_FORMAT_ERROR", {"batch_no": "20200101R0001"}),
    Refusal("batch-000", "BATCH_NO_FORMAT_ERROR", {"batch_no": _today("000")}),
    Refusal("batch-all-zero", "BATCH_NO_FORMAT_ERROR", {"batch_no": _today("000000")}),
    Refusal("date-slashes", "REFUND_DATE_ERROR", {"refund_date": "2024/01/01 10:00:00"}),
    Refusal("date-unreal", "REFUND_DATE_ERROR", {"refund_date": "2024-13-01 10:00:00"}),
    Refusal("num-text", "BATCH_NUM_ERROR", {"batch_num": "one"}),
    Refusal("num-zero", "BATCH_NUM_ERROR", {"batch_num": "0"}),
    Refusal("num-negative", "BATCH_NUM_ERROR", {"batch_num": "-1"}),
    Refusal("num-limit", "BATCH_NUM_EXCEED_LIMIT", {"batch_num": "1001"}),
    Refusal("num-total", "BATCH_NUM_NOT_EQUAL_TOTAL", {"batch_num": "2"}),
    Refusal("detail-amount", "DETAIL_DATA_FORMAT_ERROR", detail_data="T1^ten^x"),
    Refusal("detail-zero", "DETAIL_DATA_FORMAT_ERROR", detail_data="T1^0.00^x"),
    Refusal("detail-decimals", "DETAIL_DATA_FORMAT_ERROR", detail_data="T1^1.001^x"),
    Refusal("detail-fields", "DETAIL_DATA_FORMAT_ERROR", detail_data="T1^1.00"),
    Refusal("detail-royalty", "DETAIL_DATA_FORMAT_ERROR", detail_data="T1^1.00^x|a^b"),
    Refusal("reason-utf8", "BATCH_MEMO_LENGTH_EXCEED_LIMIT", detail_data="T1^1.00^" + "退" * 86),
    Refusal("reason-gbk", "BATCH_MEMO_LENGTH_EXCEED_LIMIT", detail_data="T1^1.00^" + "退" * 129, charset="gbk"),
    Refusal("dup-trade", "DUBL_TRADE_NO_IN_SAME_BATCH", detail_data="T1^1.00^a#T1^2.00^b"),
    Refusal("dup-royalty", "DUBL_ROYALTY_IN_DETAIL", detail_data=f"T1^1.00^a|{ROYALTY}|{ROYALTY}"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=lambda case: case.id)
async def test_each_sync_check_answers_its_code(alipay_http: aiohttp.ClientSession, case: Refusal) -> None:
    async with run_sandbox(sandbox_config(**case.config)) as sandbox:
        params = refund_params(new_batch_no(), case.detail_data, **{"_input_charset": case.charset, **case.overrides})
        wire = {**signed(params, case.scheme or merchant_scheme(charset=case.charset)), **case.after_sign}
        status, body = await post_form(alipay_http, sandbox.url, wire, case.charset)
        assert status == 200
        assert parse_ack(body) == Ack("F", case.code)
        assert sandbox.state.batches == {}


def test_every_code_the_sandbox_answers_is_a_documented_alipay_code() -> None:
    codes = {case.code for case in REFUSALS} | {case.code for case in EVALUATIONS if case.code != "SUCCESS"}
    codes |= {"DUPLICATE_BATCH_NO", "TRADE_STATUS_ERROR", "REFUND_NOT_EXIST"}
    assert [code for code in codes if error_code(code).meaning == "unknown code"] == []


async def test_checks_run_in_the_documented_order(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox
) -> None:
    broken = refund_params("bad", "T1^x", batch_num="x", refund_date="never")
    assert await submit_raw(alipay_http, alipay_sandbox, {**broken, "partner": OTHER_PARTNER}) == Ack(
        "F", "ILLEGAL_PARTNER"
    )
    wire = {**signed(broken, merchant_scheme()), "sign": "0" * 32}
    assert parse_ack((await post_form(alipay_http, alipay_sandbox.url, wire))[1]) == Ack("F", "ILLEGAL_SIGN")
    assert await submit_raw(alipay_http, alipay_sandbox, broken) == Ack("F", "BATCH_NO_FORMAT_ERROR")
    broken["batch_no"] = new_batch_no()
    assert await submit_raw(alipay_http, alipay_sandbox, broken) == Ack("F", "REFUND_DATE_ERROR")


async def test_a_resent_batch_no_is_a_duplicate_even_with_other_details(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox
) -> None:
    batch_no = new_batch_no()
    assert await submit_raw(alipay_http, alipay_sandbox, refund_params(batch_no, "T1^1.00^a")) == Ack("T")
    again = refund_params(batch_no, "T2^2.00^b")
    assert await submit_raw(alipay_http, alipay_sandbox, again) == Ack("F", "DUPLICATE_BATCH_NO")
    assert len(alipay_sandbox.state.batches[batch_no].details) == 1


async def test_gbk_is_assumed_when_no_charset_is_given(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox
) -> None:
    batch_no = new_batch_no()
    params = refund_params(batch_no, "T1^1.00^协商退款")
    del params["_input_charset"]
    assert await submit_raw(alipay_http, alipay_sandbox, params, charset="gbk") == Ack("T")
    assert alipay_sandbox.state.batches[batch_no].details[0].detail.trade.reason == "协商退款"


async def test_a_get_request_is_served_like_a_post(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox
) -> None:
    params = refund_params(new_batch_no(), "T1^1.00^协商退款", _input_charset="gbk")
    query = urlencode(signed(params, merchant_scheme(charset="gbk")), encoding="gbk")
    async with alipay_http.get(URL(f"{alipay_sandbox.url}?{query}", encoded=True)) as resp:
        assert parse_ack(await resp.read()) == Ack("T")
    [batch] = alipay_sandbox.state.batches.values()
    assert batch.details[0].detail.trade.reason == "协商退款"


# --- per-detail evaluation ---------------------------------------------------------------------------------

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Evaluation:
    id: str
    code: str
    trade: dict[str, Any] | None  # seed fields; None: never seeded
    amount: str = "10.00"


EVALUATIONS = [
    Evaluation("success", "SUCCESS", {}),
    Evaluation("unknown-trade", "TRADE_NOT_EXISTS", None),
    Evaluation("closed", "TRADE_HAS_CLOSED", {"status": "closed"}),
    Evaluation("finished", "TRADE_HAS_FINISHED", {"status": "finished"}),
    Evaluation("over-90-days", "TRADE_HAS_FINISHED", {"paid_at": (datetime.now(UTC) - 91 * DAY).isoformat()}),
    Evaluation("above-amount", "REFUND_AMOUNT_NOT_VALID", {"amount": "9.99"}),
    Evaluation("other-partner", "NOT_THIS_PARTNERS_TRADE", {"partner": OTHER_PARTNER}),
    Evaluation(
        "poor-seller",
        "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH",
        {"seller_id": "2088000000000077", "seller_balance": "9.99"},
    ),
]


@pytest.mark.parametrize("case", EVALUATIONS, ids=lambda case: case.id)
async def test_each_detail_is_evaluated_against_the_ledger(
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
    case: Evaluation,
) -> None:
    if case.trade is not None:
        seed(alipay_sandbox, "T1", **{"amount": "100.00", **case.trade})
    outcome = await gateway_client.submit(
        batch_no=new_batch_no(),
        refund_date=beijing_now(),
        details=[detail("T1", case.amount)],
        notify_url=notify_receiver.url(),
    )
    assert outcome.kind is SubmitKind.ACCEPTED
    [received] = await notify_receiver.wait_for(1)
    notify = parse_refund_notify(received.params)
    assert [item.trade.code for item in notify.results] == [case.code]
    assert notify.success_num == (1 if case.code == "SUCCESS" else 0)
    trade = alipay_sandbox.state.ledger.trades.get("T1")
    if trade is not None:
        assert str(trade.refunded) == ("10.00" if case.code == "SUCCESS" else "0.00")


async def test_balance_and_refunded_amount_decrease_with_each_success(
    alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, notify_receiver: NotifyReceiver
) -> None:
    seller = {"seller_id": "2088000000000077"}
    seed(alipay_sandbox, "T1", "10.00", seller_balance="15.00", **seller)
    seed(alipay_sandbox, "T2", "10.00", **seller)
    seed(alipay_sandbox, "T3", "10.00", **seller)

    async def refund(*details: Any) -> list[str]:
        count = len(notify_receiver.received) + 1
        await gateway_client.submit(
            batch_no=new_batch_no(), refund_date=beijing_now(), details=details, notify_url=notify_receiver.url()
        )
        received = (await notify_receiver.wait_for(count))[-1]
        return [item.trade.code for item in parse_refund_notify(received.params).results]

    assert await refund(detail("T1", "6.00"), detail("T2", "6.00"), detail("T3", "6.00")) == [
        "SUCCESS",
        "SUCCESS",
        "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH",
    ]
    assert alipay_sandbox.state.ledger.balance("2088000000000077") == 3
    alipay_sandbox.state.ledger.balances["2088000000000077"] += 100
    assert await refund(detail("T1", "6.00")) == ["REFUND_AMOUNT_NOT_VALID"]
    assert await refund(detail("T1", "4.00")) == ["SUCCESS"]
    assert alipay_sandbox.state.ledger.trades["T1"].refunded == 10


async def test_a_trade_is_refunded_at_most_99_times(
    alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    seed(alipay_sandbox, "T1", "100.00")

    async def refund() -> str:
        batch_no = new_batch_no()
        outcome = await gateway_client.submit(
            batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1", "0.01")], notify_url=None
        )
        assert outcome.kind is SubmitKind.ACCEPTED
        record = alipay_sandbox.state.batches[batch_no].details[0]
        result = await eventually(lambda: record.result, "the detail evaluated")
        return result.trade.code

    assert [await refund() for _ in range(99)] == ["SUCCESS"] * 99
    assert await refund() == "TRADE_STATUS_ERROR"
    assert alipay_sandbox.state.ledger.trades["T1"].refund_count == 99


async def test_royalty_and_sub_trade_parts_are_echoed_with_the_trade_code(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, notify_receiver: NotifyReceiver
) -> None:
    seed(alipay_sandbox, "T1")
    data = f"T1^5.00^协商退款|{ROYALTY}$$2.00^子交易"
    params = refund_params(new_batch_no(), data, notify_url=notify_receiver.url())
    assert await submit_raw(alipay_http, alipay_sandbox, params) == Ack("T")
    [received] = await notify_receiver.wait_for(1)
    [item] = parse_refund_notify(received.params).results
    assert item.trade.code == item.royalties[0].code == "SUCCESS"
    assert item.sub_trade is not None and item.sub_trade.code == "SUCCESS"
    assert received.params["result_details"].startswith("T1^5.00^SUCCESS|a@example.com^")


# --- notifies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sign_type", "charset"), [("MD5", "utf-8"), ("MD5", "gbk"), ("RSA", "utf-8"), ("RSA", "gbk")])
async def test_the_notify_is_signed_for_the_merchant(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    notify_receiver: NotifyReceiver,
    sign_type: str,
    charset: str,
) -> None:
    seed(alipay_sandbox, "T1")
    notify_receiver.sign_type, notify_receiver.charset = sign_type, charset
    client = make_client(alipay_http, alipay_sandbox.url, sign_type=sign_type, charset=charset)
    batch_no = new_batch_no()
    outcome = await client.submit(
        batch_no=batch_no,
        refund_date=beijing_now(),
        details=[detail("T1", "10.00", "协商退款：尺码不合适"), detail("T2", "1.00")],
        notify_url=notify_receiver.url(),
    )
    assert outcome.kind is SubmitKind.ACCEPTED
    [received] = await notify_receiver.wait_for(1)
    assert received.signature_ok
    assert received.params["sign_type"] == sign_type
    notify = parse_refund_notify(received.params)
    assert re.fullmatch(r"[0-9a-f]{32}", notify.notify_id)
    assert (notify.batch_no, notify.success_num) == (batch_no, 1)
    assert [(item.trade.trade_no, item.trade.code) for item in notify.results] == [
        ("T1", "SUCCESS"),
        ("T2", "TRADE_NOT_EXISTS"),
    ]
    assert alipay_sandbox.state.batches[batch_no].details[0].detail.trade.reason == "协商退款：尺码不合适"


async def test_the_notify_is_retried_with_the_same_id_until_exactly_success(
    alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, notify_receiver: NotifyReceiver
) -> None:
    notify_receiver.answers = ["fail", "SUCCESS", "success\n"]
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    received = await notify_receiver.wait_for(4)
    assert len({notify.params["notify_id"] for notify in received}) == 1
    assert all(notify.signature_ok for notify in received)
    [notification] = alipay_sandbox.state.batches[batch_no].notifications
    await eventually(lambda: notification.acknowledged, "the acknowledgement")
    assert [attempt["acknowledged"] for attempt in notification.attempts] == [False, False, False, True]


async def test_delivery_gives_up_after_the_eighth_attempt(
    alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, notify_receiver: NotifyReceiver
) -> None:
    notify_receiver.answers = ["fail"] * 100
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    [notification] = alipay_sandbox.state.batches[batch_no].notifications
    await eventually(lambda: notification.status == "gave_up", "retries exhausted")
    assert len(notification.attempts) == len(notify_receiver.received) == 8


async def test_notify_id_is_verifiable_while_delivered_and_void_after_success(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    notify_receiver.verifier = gateway_client
    notify_receiver.answers = ["fail"]
    await gateway_client.submit(
        batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    received = await notify_receiver.wait_for(2)
    assert [notify.verification for notify in received] == [NotifyVerification.TRUE] * 2
    notify_id = received[0].params["notify_id"]
    [notification] = alipay_sandbox.state.notifications.values()
    await eventually(lambda: notification.acknowledged, "the acknowledgement")
    assert await gateway_client.notify_verify(notify_id) is NotifyVerification.FALSE


async def test_notify_id_expires_after_the_ttl_and_belongs_to_its_partner(
    alipay_http: aiohttp.ClientSession, notify_receiver: NotifyReceiver
) -> None:
    config = sandbox_config(time_scale=1.0, notify_verify_ttl_seconds=0.2)
    async with run_sandbox(config) as sandbox:
        client = make_client(alipay_http, sandbox.url)
        notify_receiver.answers = ["fail"]
        await client.submit(
            batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
        )
        [received] = await notify_receiver.wait_for(1)
        notify_id = received.params["notify_id"]
        stranger = make_client(alipay_http, sandbox.url, partner=OTHER_PARTNER)
        assert await stranger.notify_verify(notify_id) is NotifyVerification.FALSE
        loop = asyncio.get_running_loop()
        started = loop.time()
        while await client.notify_verify(notify_id) is NotifyVerification.TRUE:
            assert loop.time() - started < DEADLINE
        assert loop.time() - started < DEADLINE
        [notification] = sandbox.state.notifications.values()
        assert len(notification.attempts) == 1  # no retry refreshed it: the next one is 4 minutes away


async def test_notify_verify_answers_invalid_without_partner_or_id(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    assert await gateway_client.notify_verify("") is NotifyVerification.INVALID
    async with alipay_http.get(alipay_sandbox.url, params={"service": "notify_verify", "notify_id": "x"}) as resp:
        assert await resp.text() == "invalid"
    assert await gateway_client.notify_verify("f" * 32) is NotifyVerification.FALSE


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
@pytest.mark.parametrize(("status", "dback_result"), [("S", "S"), ("F", "F"), ("I", "P")])
async def test_a_scripted_dback_sends_the_dback_notify_and_the_five_field_result(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    notify_receiver: NotifyReceiver,
    charset: str,
    status: str,
    dback_result: str,
) -> None:
    seed(alipay_sandbox, "T1", dback=status)
    seed(alipay_sandbox, "T2")
    notify_receiver.charset = charset
    client = make_client(alipay_http, alipay_sandbox.url, charset=charset)
    batch_no = new_batch_no()
    await client.submit(
        batch_no=batch_no,
        refund_date=beijing_now(),
        details=[detail("T1"), detail("T2")],
        notify_url=notify_receiver.url(),
        dback_notify_url=notify_receiver.url("/dback"),
    )
    [refund] = await notify_receiver.wait_for(1)
    [dback] = await notify_receiver.wait_for(1, "/dback")
    assert refund.signature_ok and dback.signature_ok
    parsed = parse_dback_notify(dback.params)
    assert (parsed.trade_no, parsed.batch_no, parsed.status) == ("T1", batch_no, status)
    assert parsed.bank_name == "中国工商银行"
    assert parsed.notify_id != refund.params["notify_id"]
    first, second = parse_refund_notify(refund.params).results
    assert (first.trade.is_dback, first.trade.dback_result) == (True, dback_result)
    assert (second.trade.is_dback, second.trade.dback_result) == (None, None)
    assert refund.params["result_details"] == f"T1^10.00^SUCCESS^true^{dback_result}#T2^10.00^SUCCESS"


async def test_refunds_from_frozen_funds_report_the_unfrozen_amounts(
    alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, notify_receiver: NotifyReceiver
) -> None:
    seed(alipay_sandbox, "T1")
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no,
        refund_date=beijing_now(),
        details=[detail("T1", "3.00"), detail("T2")],
        notify_url=notify_receiver.url(),
        use_freeze_amount=True,
    )
    [received] = await notify_receiver.wait_for(1)
    assert received.signature_ok
    [unfreezed] = parse_refund_notify(received.params).unfreezed
    assert (unfreezed.trade_no, unfreezed.amount, unfreezed.status) == ("T1", Decimal("3.00"), "SUCCESS")


# --- faults --------------------------------------------------------------------------------------------


async def _set_faults(http: aiohttp.ClientSession, sandbox: RunningSandbox, spec: Any) -> tuple[int, Any]:
    async with http.post(sandbox.base_url + "/sandbox/faults", json=spec) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_dropped_notifies_are_never_sent(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"drop_notifies": True})
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    [notification] = alipay_sandbox.state.batches[batch_no].notifications
    await eventually(lambda: notification.status == "dropped", "the notify dropped")
    assert notification.attempts == notify_receiver.received == []
    assert await gateway_client.notify_verify(notification.notify_id) is NotifyVerification.FALSE


async def test_duplicated_notifies_arrive_n_times_with_one_id(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"duplicate_notifies": 3})
    await gateway_client.submit(
        batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    received = await notify_receiver.wait_for(3)
    assert len({notify.params["notify_id"] for notify in received}) == 1
    assert all(notify.signature_ok for notify in received)


async def test_a_delayed_notify_waits_before_the_first_delivery(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"delay_notify_seconds": 0.2})
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    batch = alipay_sandbox.state.batches[batch_no]
    # The receiver sees the notify before the sandbox records the attempt (after the answer): wait for the record.
    attempts = await eventually(lambda: batch.notifications and batch.notifications[0].attempts, "the first attempt")
    first = datetime.fromisoformat(attempts[0]["at"])
    assert first - batch.received_at >= timedelta(seconds=0.2)


async def test_a_closed_connection_hides_a_processed_batch(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"close_after_processing": 1})
    batch_no = new_batch_no()

    async def submit() -> SubmitKind:
        outcome = await gateway_client.submit(
            batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=None
        )
        return outcome.kind

    assert await submit() is SubmitKind.UNKNOWN  # no answer at all...
    assert batch_no in alipay_sandbox.state.batches  # ...yet the batch was received and processed
    assert await submit() is SubmitKind.DUPLICATE


async def test_notify_before_ack_delivers_the_notify_before_the_answer_leaves(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"notify_before_ack": 1})
    batch_no = new_batch_no()
    outcome = await gateway_client.submit(
        batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
    )
    assert outcome.kind is SubmitKind.ACCEPTED
    # Already there when the answer came back: no waiting.
    [received] = notify_receiver.at("/notify")
    assert received.params["batch_no"] == batch_no and received.signature_ok


async def test_held_notifies_wait_and_are_released_in_reverse_order(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"hold_notifies": True})
    batch_nos = [new_batch_no() for _ in range(3)]
    for batch_no in batch_nos:
        await gateway_client.submit(
            batch_no=batch_no, refund_date=beijing_now(), details=[detail("T1")], notify_url=notify_receiver.url()
        )
    held = [alipay_sandbox.state.batches[batch_no].notifications[0] for batch_no in batch_nos]
    await eventually(lambda: len(alipay_sandbox.state.held) == 3, "three notifies held")
    assert [n.status for n in held] == ["held"] * 3 and notify_receiver.received == []
    assert await gateway_client.notify_verify(held[0].notify_id) is NotifyVerification.FALSE  # never sent yet
    await _set_faults(alipay_http, alipay_sandbox, {"hold_notifies": False})
    release = alipay_sandbox.base_url + "/sandbox/notifies/release"
    async with alipay_http.post(release, json={"order": "reverse"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["released"] == [n.notify_id for n in reversed(held)]
    received = await notify_receiver.wait_for(3)
    assert [notify.params["batch_no"] for notify in received] == batch_nos[::-1]
    await eventually(lambda: all(n.acknowledged for n in held), "every released notify acknowledged")
    assert alipay_sandbox.state.held == []


@pytest.mark.parametrize("body", [{"order": "random"}, ["reverse"]])
async def test_a_bad_release_is_a_problem_and_releases_nothing(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, body: Any
) -> None:
    await _set_faults(alipay_http, alipay_sandbox, {"hold_notifies": 1})
    await gateway_client.submit(
        batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url="http://127.0.0.1:9/"
    )
    async with alipay_http.post(alipay_sandbox.base_url + "/sandbox/notifies/release", json=body) as resp:
        assert resp.status == 400 and (await resp.json(content_type=None))["type"] == PROBLEM_TYPE
    assert len(alipay_sandbox.state.held) == 1


async def test_count_limited_faults_switch_off_after_their_uses(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    status, snapshot = await _set_faults(
        alipay_http, alipay_sandbox, {"answer_5xx": 1, "answer_processing": {"value": True, "times": 2}}
    )
    assert status == 200
    assert snapshot["answer_5xx"] == {"value": True, "times": 1}

    async def submit() -> SubmitKind:
        outcome = await gateway_client.submit(
            batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=None
        )
        return outcome.kind

    kinds = [await submit() for _ in range(4)]
    assert kinds == [SubmitKind.UNKNOWN, SubmitKind.PROCESSING, SubmitKind.PROCESSING, SubmitKind.ACCEPTED]
    async with alipay_http.get(alipay_sandbox.base_url + "/sandbox/faults") as resp:
        assert await resp.json() == {
            "answer_processing": False,
            "answer_5xx": False,
            "hang_seconds": 0.0,
            "drop_notifies": False,
            "delay_notify_seconds": 0.0,
            "duplicate_notifies": 1,
            "refuse_trade": "",
            "close_after_processing": False,
            "notify_before_ack": False,
            "hold_notifies": False,
            "acq_system_error": "",
            "answer_fund_change_n": False,
            "rate_limit": False,
        }


@pytest.mark.parametrize(
    "spec",
    [
        {"answer_5xx": "yes"},
        {"no_such_fault": True},
        {"hang_seconds": -1},
        {"duplicate_notifies": 0},
        {"drop_notifies": {"value": True, "times": 0}},
        {"answer_5xx": {"times": 1}},
        {"refuse_trade": 2026112522},
        ["answer_5xx"],
    ],
)
async def test_bad_fault_switches_are_refused_whole(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, spec: Any
) -> None:
    body = {"answer_processing": True, **spec} if isinstance(spec, dict) else spec
    status, problem = await _set_faults(alipay_http, alipay_sandbox, body)
    assert status == 400 and problem["type"] == PROBLEM_TYPE
    assert alipay_sandbox.state.faults.snapshot()["answer_processing"] is False


def test_faults_and_keys_are_checked_when_configured() -> None:
    with pytest.raises(ValueError, match="hang_seconds"):
        SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, faults={"hang_seconds": "long"})
    with pytest.raises(ValueError, match="md5_key"):
        SandboxConfig(partner=PARTNER)


# --- the ledger and the views --------------------------------------------------------------------------


async def test_trades_are_seeded_over_http(alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox) -> None:
    trades_url = alipay_sandbox.base_url + "/sandbox/trades"
    trades = [
        {"trade_no": "T1", "amount": "100.00"},
        {"trade_no": "T2", "amount": 50, "status": "closed", "paid_at": "2024-03-01T10:00:00", "dback": "S"},
    ]
    async with alipay_http.post(trades_url, json=trades) as resp:
        assert resp.status == 201
    async with alipay_http.post(trades_url, json={"trade_no": "T3", "amount": "1", "seller_balance": "0"}) as resp:
        assert resp.status == 201
    async with alipay_http.get(trades_url) as resp:
        listed = {trade["trade_no"]: trade for trade in await resp.json()}
    assert listed["T1"]["amount"] == "100.00" and listed["T1"]["seller_balance"] == "0.00"
    assert listed["T2"]["paid_at"] == "2024-03-01T10:00:00+08:00"
    assert (listed["T2"]["status"], listed["T2"]["dback"], listed["T2"]["amount"]) == ("closed", "S", "50.00")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"trade_no": "T1", "amount": 1.5}',
        b'{"trade_no": "T1", "amount": "1.234"}',
        b'{"trade_no": "T1", "amount": "0"}',
        b'{"amount": "1.00"}',
        b'{"trade_no": "T1", "amount": "1.00", "status": "refunded"}',
        b'{"trade_no": "T1", "amount": "1.00", "paid_at": "yesterday"}',
        b'{"trade_no": "T1", "amount": "1.00", "colour": "red"}',
        b'[{"trade_no": "T1", "amount": "1.00"}, {"trade_no": "T2"}]',
        b"42",
    ],
)
async def test_bad_trades_are_a_problem_and_nothing_is_stored(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, body: bytes
) -> None:
    async with alipay_http.post(alipay_sandbox.base_url + "/sandbox/trades", data=body) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
    assert problem["type"] == PROBLEM_TYPE and problem["status"] == 400 and problem["detail"]
    assert alipay_sandbox.state.ledger.trades == {}


async def test_batches_view_shows_details_results_and_deliveries(
    alipay_http: aiohttp.ClientSession,
    alipay_sandbox: RunningSandbox,
    gateway_client: GatewayClient,
    notify_receiver: NotifyReceiver,
) -> None:
    seed(alipay_sandbox, "T1")
    batch_no = new_batch_no()
    await gateway_client.submit(
        batch_no=batch_no,
        refund_date=beijing_now(),
        details=[detail("T1", "1.50"), detail("T9")],
        notify_url=notify_receiver.url(),
    )
    [notification] = alipay_sandbox.state.batches[batch_no].notifications
    await eventually(lambda: notification.acknowledged, "the acknowledgement")
    async with alipay_http.get(alipay_sandbox.base_url + "/sandbox/batches") as resp:
        [batch] = await resp.json()
    assert batch["batch_no"] == batch_no and batch["evaluated"] is True
    assert datetime.fromisoformat(batch["received_at"]).tzinfo is not None
    assert [(d["trade_no"], d["amount"], d["reason"], d["code"]) for d in batch["details"]] == [
        ("T1", "1.50", "协商退款", "SUCCESS"),
        ("T9", "10.00", "协商退款", "TRADE_NOT_EXISTS"),
    ]
    [delivery] = batch["notifications"]
    assert delivery["acknowledged"] is True and delivery["status"] == "acknowledged"
    assert [attempt["status"] for attempt in delivery["attempts"]] == [200]


async def test_shutdown_cancels_pending_deliveries(alipay_http: aiohttp.ClientSession) -> None:
    async with run_sandbox(sandbox_config(time_scale=1.0)) as sandbox:
        client = make_client(alipay_http, sandbox.url)
        closed_port_url = "http://127.0.0.1:1/notify"
        await client.submit(
            batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=closed_port_url
        )
        [notification] = sandbox.state.notifications.values()
        await eventually(lambda: notification.attempts, "the first failed delivery")
    pending = [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "_deliver"]
    assert pending == []
    assert notification.status == "pending"


# --- the command ---------------------------------------------------------------------------------------


async def test_the_sandbox_command_serves_signed_requests(alipay_http: aiohttp.ClientSession, tmp_path: Path) -> None:
    trades = tmp_path / "trades.json"
    trades.write_text(json.dumps([{"trade_no": "T1", "amount": "100.00"}]), encoding="utf-8")
    command = "from refund_adapter.cli import main; main()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", command, "sandbox", "--port", "0", "--md5-key", MD5_KEY,
        "--trades", str(trades), "--time-scale", "1000",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), DEADLINE)).decode()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/gateway.do"), line
        outcome = await make_client(alipay_http, url).submit(
            batch_no=new_batch_no(), refund_date=beijing_now(), details=[detail("T1")], notify_url=None
        )
        assert outcome.kind is SubmitKind.ACCEPTED
        async with alipay_http.get(url.replace("/gateway.do", "/sandbox/trades")) as resp:
            assert [trade["trade_no"] for trade in await resp.json()] == ["T1"]
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
