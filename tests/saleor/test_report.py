"""The result through transactionEventReport, at the fake Saleor's GraphQL endpoint; what each answer means."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from refund_adapter_saleor import SaleorPlatform
from refund_adapter_saleor.report import MAX_MESSAGE_CHARS, judge, message
from refund_adapter_saleor.settings import parse_settings

from refund_adapter.plugin_api import DeliveryResult, InboundWebhook, RefundOutcome

from .fake_saleor import FakeSaleor, section


async def requested(fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform,
                    amount: str = "30.00") -> tuple[str, RefundOutcome]:
    """A refund Saleor asked for and the adapter answered (the REFUND_REQUEST event holds our reference)."""
    transaction = fake.add_transaction()
    body = fake.refund_requested(transaction, amount, granted_refund="G1")
    (request,) = (await platform.receive(InboundWebhook("saleor", "", fake.headers(body), {}, body))).requests
    fake.answered_with(transaction, request.context["psp_reference"], amount)
    return transaction, RefundOutcome(7, request, succeeded=True, code="SUCCESS", batch_no="20261125001")


def failed(outcome: RefundOutcome, code: str | None = "TRADE_HAS_CLOSED") -> RefundOutcome:
    return dataclasses.replace(outcome, succeeded=False, code=code)


async def test_a_success_is_a_refund_success_event(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    transaction, outcome = await requested(fake, http, platform)
    assert await platform.report(outcome) == DeliveryResult.delivered()
    (event,) = fake.results(transaction)
    assert event["type"] == "REFUND_SUCCESS" and event["amount"] == Decimal("30.00")
    assert event["pspReference"] == outcome.request.context["psp_reference"]
    assert event["message"] == "Refunded through Alipay: SUCCESS, Alipay batch 20261125001"
    assert fake.transactions[transaction].refunded == Decimal("30.00")


async def test_a_failure_is_a_refund_failure_event_with_the_alipay_code(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    transaction, outcome = await requested(fake, http, platform)
    assert await platform.report(failed(outcome)) == DeliveryResult.delivered()
    (event,) = fake.results(transaction)
    assert event["type"] == "REFUND_FAILURE" and event["amount"] == Decimal("30.00")
    assert event["message"].startswith("Not refunded through Alipay: TRADE_HAS_CLOSED (")
    assert event["message"].endswith("), Alipay batch 20261125001")
    assert fake.transactions[transaction].charged == Decimal("100.00")  # the money is back on the charge


async def test_a_result_reported_twice_is_one_event(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    """After a crash between a delivery and its record: Saleor says alreadyProcessed, which is delivered."""
    transaction, outcome = await requested(fake, http, platform)
    assert await platform.report(outcome) == DeliveryResult.delivered()
    assert await platform.report(outcome) == DeliveryResult.delivered()
    assert len(fake.reports) == 2 and len(fake.results(transaction)) == 1


async def test_a_refund_rejected_before_alipay_says_why(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    transaction, outcome = await requested(fake, http, platform)
    assert await platform.report(failed(dataclasses.replace(outcome, batch_no=None), "EXCEEDS_PAID_AMOUNT")) == (
        DeliveryResult.delivered())
    assert fake.results(transaction)[0]["message"] == "Not refunded through Alipay: EXCEEDS_PAID_AMOUNT"


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (lambda fake: fake.answer_next(503, body="busy", headers={"Retry-After": "7"}),
         DeliveryResult.retry("HTTP 503: busy", 7.0)),
        (lambda fake: fake.answer_next(429, body="slow down"), DeliveryResult.retry("HTTP 429: slow down")),
        (lambda fake: fake.answer_next(401, body="no"), DeliveryResult.dead("HTTP 401: no")),
        (lambda fake: fake.answer_next(404), DeliveryResult.dead("HTTP 404: ")),
        (lambda fake: fake.answer_next(200, body="<html>"), None),
    ],
    ids=["503", "429", "401", "404", "not-json"],
)
async def test_http_answers(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform, answer: Any, status: Any
) -> None:
    _, outcome = await requested(fake, http, platform)
    answer(fake)
    result = await platform.report(outcome)
    if status is None:
        assert result.status == "retry" and result.reason.startswith("JSONDecodeError")
    else:
        assert result == status


async def test_a_refused_token_is_a_dead_letter(fake: FakeSaleor, http: aiohttp.ClientSession) -> None:
    platform = SaleorPlatform(parse_settings(section(fake, app_token="revoked")), http)
    transaction, outcome = await requested(fake, http, platform)
    result = await platform.report(outcome)
    assert result.status == "dead" and "HANDLE_PAYMENTS" in result.reason
    assert fake.results(transaction) == []


async def test_a_transaction_saleor_does_not_have_is_a_dead_letter(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    transaction, outcome = await requested(fake, http, platform)
    del fake.transactions[transaction]
    result = await platform.report(outcome)
    assert result.status == "dead" and result.reason.startswith("transactionEventReport: NOT_FOUND id")


async def test_another_amount_under_the_same_reference_is_a_dead_letter(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    transaction, outcome = await requested(fake, http, platform)
    await platform.report(outcome)
    other = dataclasses.replace(outcome, request=dataclasses.replace(outcome.request, amount=Decimal("29.00")))
    result = await platform.report(other)
    assert result.status == "dead" and "INCORRECT_DETAILS" in result.reason
    assert len(fake.results(transaction)) == 1


async def test_a_shop_no_longer_configured_is_a_dead_letter(
    fake: FakeSaleor, http: aiohttp.ClientSession, platform: SaleorPlatform
) -> None:
    _, outcome = await requested(fake, http, platform)
    gone = dataclasses.replace(outcome, request=dataclasses.replace(outcome.request, shop="https://gone/graphql"))
    assert (await platform.report(gone)).status == "dead"
    assert fake.reports == []


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ([], "retry"),
        ({"data": None}, "retry"),
        ({"errors": [{"message": "Internal Server Error", "extensions": {"exception": {"code": "OperationalError"}}}]},
         "retry"),
        ({"data": {"transactionEventReport": {"errors": [{"code": "GRAPHQL_ERROR", "field": None,
                                                          "message": "x"}]}}}, "retry"),
        ({"data": {"transactionEventReport": {"errors": [{"code": "INVALID", "field": "amount", "message": "x"}]}}},
         "dead"),
        ({"data": {"transactionEventReport": {"alreadyProcessed": True, "transactionEvent": {"id": "1"},
                                              "errors": []}}}, "delivered"),
    ],
    ids=["not-an-object", "no-data", "server-error", "graphql-error", "invalid", "already-processed"],
)
def test_judge(answer: Any, status: str) -> None:
    assert judge(answer).status == status


def test_the_message_fits_saleors_limit(fake: FakeSaleor) -> None:
    outcome = RefundOutcome(1, None, succeeded=False, code="X" * 600, batch_no=None)  # type: ignore[arg-type]
    assert len(message(outcome)) == MAX_MESSAGE_CHARS
