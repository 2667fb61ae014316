"""The sandbox's OpenAPI face, driven by our real OpenAPI client over loopback HTTP: one refund per
(trade_no, out_request_no) on the shared ledger, answers signed over their node text, ACQ codes for the
ledger's refusals, the query, the faults, and one `GET /sandbox/batches` entry per refund call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from refund_adapter.channels.openapi.client import OpenApiClient
from refund_adapter.channels.openapi.messages import App
from refund_adapter.channels.openapi.outcomes import QueryKind, RefundKind
from refund_adapter.channels.openapi.signing import Signer
from refund_adapter.sandbox import RunningSandbox, run_sandbox

from . import kit
from .kit import TIMEOUT, rsa_keys, sandbox_config, seed

APP_ID = "2021000000000001"
TRADE = "2026120722001400001"
OUT = "RA0123"

alipay_http = kit.alipay_http


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox(sandbox_config(app_id=APP_ID)) as running:
        seed(running, TRADE, "100.00")
        yield running


def _client(http: aiohttp.ClientSession, sandbox: RunningSandbox, *, sign_type: str = "RSA2",
            app_id: str = APP_ID, timeout: aiohttp.ClientTimeout = TIMEOUT, wrong_key: bool = False) -> OpenApiClient:
    keys = rsa_keys()
    signer = Signer(sign_type, keys.alipay if wrong_key else keys.merchant, keys.alipay.public_key())
    return OpenApiClient(http, gateway_url=sandbox.openapi_url, app=App(app_id), signer=signer, timeout=timeout,
                         now=lambda: datetime.now(UTC))


async def _faults(http: aiohttp.ClientSession, sandbox: RunningSandbox, spec: dict[str, Any]) -> None:
    async with http.post(sandbox.base_url + "/sandbox/faults", json=spec) as resp:
        assert resp.status == 200, await resp.text()


async def _received(http: aiohttp.ClientSession, sandbox: RunningSandbox) -> list[dict[str, Any]]:
    async with http.get(sandbox.base_url + "/sandbox/batches") as resp:
        return [entry for entry in await resp.json() if entry.get("channel") == "openapi"]


def _refunded(sandbox: RunningSandbox, trade_no: str = TRADE) -> tuple[Decimal, int]:
    trade = sandbox.state.ledger.trades[trade_no]
    return trade.refunded, trade.refund_count


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
async def test_a_refund_is_made_once_however_often_it_is_sent(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox, sign_type: str
) -> None:
    client = _client(alipay_http, sandbox, sign_type=sign_type)
    first = await client.refund(TRADE, Decimal("12.30"), OUT, "尺码不合")
    assert first.answer.kind is RefundKind.SUCCEEDED and first.answer.fields["refund_fee"] == "12.30"
    again = await client.refund(TRADE, Decimal("12.30"), OUT, "尺码不合")
    assert again.answer.kind is RefundKind.ALREADY_DONE
    assert _refunded(sandbox) == (Decimal("12.30"), 1)
    queried = await client.query(TRADE, OUT)
    assert (queried.answer.kind, queried.answer.amount) == (QueryKind.REFUNDED, Decimal("12.30"))
    entries = await _received(alipay_http, sandbox)
    assert [(e["out_request_no"], e["amount"], e["answer"]["fund_change"], e["sign_type"]) for e in entries] == [
        (OUT, "12.30", "Y", sign_type), (OUT, "12.30", "N", sign_type)]
    assert "sign" not in first.request and first.request["method"] == "alipay.trade.refund"


async def test_two_refunds_of_one_trade_and_a_discordant_repeat(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    client = _client(alipay_http, sandbox)
    assert (await client.refund(TRADE, Decimal("10.00"), "RA1", "")).answer.kind is RefundKind.SUCCEEDED
    assert (await client.refund(TRADE, Decimal("20.00"), "RA2", "")).answer.kind is RefundKind.SUCCEEDED
    discordant = (await client.refund(TRADE, Decimal("5.00"), "RA1", "")).answer
    assert (discordant.kind, discordant.code) == (RefundKind.UNKNOWN, "ACQ.DISCORDANT_REPEAT_REQUEST")
    assert _refunded(sandbox) == (Decimal("30.00"), 2)
    assert (await client.query(TRADE, "RA3")).answer.kind is QueryKind.NOT_REFUNDED
    entries = await _received(alipay_http, sandbox)  # one per refund call, a refused one with its answer
    assert [(e["out_request_no"], e["answer"].get("sub_code")) for e in entries] == [
        ("RA1", None), ("RA2", None), ("RA1", "ACQ.DISCORDANT_REPEAT_REQUEST")]


async def test_ledger_refusals_are_acq_codes_and_a_refused_refund_may_be_sent_again(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    client = _client(alipay_http, sandbox)
    seed(sandbox, "2026120722001400002", "50.00", seller_balance="1.00")
    low = (await client.refund("2026120722001400002", Decimal("5.00"), OUT, "")).answer
    assert (low.kind, low.code) == (RefundKind.FAILED, "ACQ.SELLER_BALANCE_NOT_ENOUGH")
    assert (await client.query("2026120722001400002", OUT)).answer.kind is QueryKind.NOT_REFUNDED
    sandbox.state.ledger.balances[sandbox.state.ledger.trades["2026120722001400002"].seller_id] = Decimal("100")
    assert (await client.refund("2026120722001400002", Decimal("5.00"), OUT, "")).answer.kind is RefundKind.SUCCEEDED
    too_much = (await client.refund(TRADE, Decimal("100.01"), OUT, "")).answer
    assert (too_much.kind, too_much.code) == (RefundKind.FAILED, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    missing = (await client.refund("2026120799999999999", Decimal("1.00"), OUT, "")).answer
    assert (missing.kind, missing.code) == (RefundKind.FAILED, "ACQ.TRADE_NOT_EXIST")
    assert (await client.query("2026120799999999999", OUT)).answer.kind is QueryKind.NOT_REFUNDED
    seed(sandbox, "2026120722001400003", "50.00", status="finished")
    finished = (await client.refund("2026120722001400003", Decimal("1.00"), OUT, "")).answer
    assert (finished.kind, finished.code) == (RefundKind.FAILED, "ACQ.TRADE_HAS_FINISHED")


async def test_requests_not_signed_by_the_app_are_refused_unsigned_and_nothing_moves(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    wrong_key = (await _client(alipay_http, sandbox, wrong_key=True).refund(TRADE, Decimal("1.00"), OUT, "")).answer
    assert wrong_key.kind is RefundKind.UNKNOWN and "isv.invalid-signature" in wrong_key.detail
    other_app = (await _client(alipay_http, sandbox, app_id="2021000000000999").refund(
        TRADE, Decimal("1.00"), OUT, "")).answer
    assert other_app.kind is RefundKind.UNKNOWN and "isv.invalid-app-id" in other_app.detail
    assert _refunded(sandbox) == (Decimal("0.00"), 0)


async def test_system_error_after_processing_is_unknown_and_the_query_finds_the_refund(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    client = _client(alipay_http, sandbox)
    await _faults(alipay_http, sandbox, {"acq_system_error": {"value": "after", "times": 1}})
    answer = (await client.refund(TRADE, Decimal("12.30"), OUT, "")).answer
    assert (answer.kind, answer.code) == (RefundKind.UNKNOWN, "ACQ.SYSTEM_ERROR")
    assert (await client.query(TRADE, OUT)).answer.kind is QueryKind.REFUNDED
    assert _refunded(sandbox) == (Decimal("12.30"), 1)


async def test_system_error_before_processing_leaves_no_refund(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    client = _client(alipay_http, sandbox)
    await _faults(alipay_http, sandbox, {"acq_system_error": {"value": "before", "times": 1}})
    assert (await client.refund(TRADE, Decimal("12.30"), OUT, "")).answer.kind is RefundKind.UNKNOWN
    assert (await client.query(TRADE, OUT)).answer.kind is QueryKind.NOT_REFUNDED
    assert _refunded(sandbox) == (Decimal("0.00"), 0)


async def test_fund_change_n_rate_limit_and_5xx(alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox) -> None:
    client = _client(alipay_http, sandbox)
    await _faults(alipay_http, sandbox, {"rate_limit": 1})
    limited = (await client.refund(TRADE, Decimal("1.00"), OUT, "")).answer
    assert (limited.kind, limited.code) == (RefundKind.RATE_LIMITED, "isv.app-call-limited")
    assert _refunded(sandbox) == (Decimal("0.00"), 0)
    await _faults(alipay_http, sandbox, {"answer_5xx": 1})
    assert (await client.refund(TRADE, Decimal("1.00"), OUT, "")).answer.kind is RefundKind.UNKNOWN
    assert _refunded(sandbox) == (Decimal("0.00"), 0)
    await _faults(alipay_http, sandbox, {"answer_fund_change_n": 1})
    assert (await client.refund(TRADE, Decimal("1.00"), OUT, "")).answer.kind is RefundKind.ALREADY_DONE
    assert _refunded(sandbox) == (Decimal("1.00"), 1)


async def test_a_hang_after_processing_times_the_client_out_with_the_refund_made(
    alipay_http: aiohttp.ClientSession, sandbox: RunningSandbox
) -> None:
    client = _client(alipay_http, sandbox, timeout=aiohttp.ClientTimeout(total=0.3))
    await _faults(alipay_http, sandbox, {"hang_seconds": {"value": 30.0, "times": 1}})
    answer = (await client.refund(TRADE, Decimal("12.30"), OUT, "")).answer
    assert (answer.kind, answer.detail) == (RefundKind.UNKNOWN, "timed out")
    assert _refunded(sandbox) == (Decimal("12.30"), 1)
    await _faults(alipay_http, sandbox, {"close_after_processing": 1})
    closed = (await client.refund(TRADE, Decimal("1.00"), "RA2", "")).answer
    assert closed.kind is RefundKind.UNKNOWN and closed.detail.startswith("transport error")
    assert _refunded(sandbox) == (Decimal("13.30"), 2)
