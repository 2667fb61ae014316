"""The whole loop: the fake Saleor delivers TRANSACTION_REFUND_REQUESTED as its Celery task does, the adapter pays
through the Alipay sandbox, and the result ends as a REFUND_SUCCESS or REFUND_FAILURE event at the fake Saleor;
Saleor rotates its signing key between two refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from refund_adapter_saleor.settings import shop_id

from refund_adapter.testing import AdapterLoop, seed_trade, wait_for_report_state

from .fake_saleor import FakeSaleor, new_key, reference, section

PAID = "2026120722000000000000000101"
CLOSED = "2026120722000000000000000102"
DEADLINE = 30.0
BACKOFF = 0.05


@pytest.fixture
async def loop(fake: FakeSaleor, serve_adapter: Any, running_sandbox: Any) -> AsyncIterator[AdapterLoop]:
    seed_trade(running_sandbox, PAID, Decimal("100.00"))
    seed_trade(running_sandbox, CLOSED, Decimal("100.00"), status="closed")
    # Saleor retries a 503 after 10 s, 20 s...: the fake's delivery waits BACKOFF, 2 * BACKOFF...
    async with serve_adapter({"saleor": section(fake) | {"jwks_min_refetch_seconds": BACKOFF}}) as adapter:
        yield adapter


async def request_refund(loop: AdapterLoop, fake: FakeSaleor, transaction: str, amount: str, granted: str) -> Any:
    body = fake.refund_requested(transaction, amount, granted_refund=granted)
    delivery = await fake.deliver(loop.http, f"{loop.url}/webhooks/saleor", body, backoff=BACKOFF)
    assert delivery.statuses[-1] == 200 and set(delivery.statuses[:-1]) <= {503}, delivery.statuses
    assert delivery.answer == {"pspReference": reference(transaction, granted)}
    return delivery


async def reported(loop: AdapterLoop, fake: FakeSaleor, transaction: str, granted: str) -> Any:
    key = ("saleor", shop_id(fake.api_url), f"{transaction}:{granted}")
    return await wait_for_report_state(loop.store, key, within=DEADLINE)


async def test_refunds_end_as_success_and_failure_events_across_a_key_rotation(
    loop: AdapterLoop, fake: FakeSaleor
) -> None:
    paid = fake.add_transaction("100.00", trade_no=PAID)
    closed = fake.add_transaction("100.00", trade_no=CLOSED)
    await request_refund(loop, fake, paid, "30.00", "G1")
    fake.rotate_key()  # just after the keys were fetched: answered 503 until they may be fetched again, then taken
    await request_refund(loop, fake, closed, "12.30", "G2")
    assert fake.jwks_fetches == 2

    success = await reported(loop, fake, paid, "G1")
    failure = await reported(loop, fake, closed, "G2")
    assert (success.report_state, failure.report_state) == ("delivered", "delivered")
    (event,) = fake.results(paid)
    assert (event["type"], event["amount"], event["pspReference"]) == (
        "REFUND_SUCCESS", Decimal("30.00"), reference(paid, "G1"))
    assert event["message"] == f"Refunded through Alipay: SUCCESS, Alipay batch {success.batch_no}"
    (event,) = fake.results(closed)
    assert (event["type"], event["amount"]) == ("REFUND_FAILURE", Decimal("12.30"))
    assert event["message"].startswith("Not refunded through Alipay: TRADE_HAS_CLOSED (")
    assert fake.transactions[paid].refunded == Decimal("30.00")
    assert fake.transactions[closed].charged == Decimal("100.00")


def _unknown_kid(fake: FakeSaleor, body: bytes) -> dict[str, str]:
    return {"signature": new_key().sign(body)}


def _tampered(fake: FakeSaleor, body: bytes) -> dict[str, str]:
    return {"signature": fake.key.sign(body.replace(b"12.3", b"99.3"))}


@pytest.mark.parametrize(
    ("headers", "status", "problem"),
    [
        (_tampered, 401, "invalid-signature"),
        (_unknown_kid, 401, "unknown-key"),
        (lambda fake, body: {"signature": "0" * 64}, 401, "invalid-signature"),
        (lambda fake, body: {"api_url": "https://elsewhere.example/graphql/"}, 404, "unknown-shop"),
        (lambda fake, body: {"event": "transaction_cancelation_requested"}, 400, "unsupported-event"),
    ],
    ids=["tampered", "unknown-kid", "hmac-not-configured", "unknown-shop", "other-event"],
)
async def test_refused_webhooks_store_nothing_and_are_not_retried(
    loop: AdapterLoop, fake: FakeSaleor, headers: Any, status: int, problem: str
) -> None:
    transaction = fake.add_transaction("100.00", trade_no=PAID)
    await request_refund(loop, fake, transaction, "1.00", "first")  # the keys are fetched
    body = fake.refund_requested(transaction, "12.30", granted_refund="G2")
    delivery = await fake.deliver(loop.http, f"{loop.url}/webhooks/saleor", body, backoff=BACKOFF,
                                  **headers(fake, body))
    # A new kid waits for the refetch interval (503, retried); then a 4xx: Saleor records a failure, sends no more.
    assert delivery.statuses[-1] == status and set(delivery.statuses[:-1]) <= {503}, delivery.statuses
    stored = await loop.store.list_refunds(limit=10)
    assert [refund.request.platform_refund_id for refund in stored] == [f"{transaction}:first"]
    assert problem in delivery.text
