"""`POST /webhooks/{platform}/...` through the real app on a real port, with the real sandbox behind it.

A refused webhook leaves the store exactly as it was and says why with a stable problem `type`; an accepted
one is stored once however often it is replayed; the core's own guards keep an impossible refund off Alipay.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from refund_adapter_generic import standard_webhooks
from refund_adapter_generic.shop import SimulatedShop, signed_generic_webhook

from refund_adapter.config import Config, parse_config
from refund_adapter.models import Refund, RefundState, ReportState
from refund_adapter.sandbox import RunningSandbox, SandboxConfig, TradeSeed
from refund_adapter.store import EXCEEDS_PAID_AMOUNT, RefundStore
from refund_adapter.testing import adapter_loop, local_config, metric_value, wait_until

PARTNER = "2088101122136241"
MD5_KEY = "webhook-intake-md5-key-0123456789"
SECRET = "whsec_" + base64.b64encode(b"webhook-intake-shop-secret-32by!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-entirely-32-bytes!").decode()
SHOP = "shop-1"
TRADE_NO = "2026112522000000000001"
MAX_BODY = 4096
DEADLINE = 10.0
PROBLEM = "urn:refund-adapter:problem:"


def payload(**changes: Any) -> dict[str, Any]:
    base = {"refund_id": "r-1", "order_id": "o-1", "trade_no": TRADE_NO, "amount": "12.30", "currency": "CNY",
            "reason": "damaged", "paid_amount": "20.00"}
    return {**base, **changes}


def config(tmp_path: Path, port: int, gateway_url: str, shop_url: str) -> Config:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url, "alipay_account": "main"}
    raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                       platforms={"generic": {"shops": [shop]}}, server={"max_body_bytes": MAX_BODY})
    return parse_config(raw, env={})


@dataclass
class Intake:
    url: str
    store: RefundStore
    sandbox: RunningSandbox
    shop: SimulatedShop
    http: aiohttp.ClientSession

    async def send(self, headers: dict[str, str], body: bytes, path: str = f"/webhooks/generic/{SHOP}") -> tuple[
        int, str, Any
    ]:
        """Status, content type and decoded JSON (or text) of the adapter's answer."""
        async with self.http.post(self.url + path, data=body, headers=headers) as resp:
            text = await resp.text()
            document = json.loads(text) if resp.content_type.endswith("json") else text
            return resp.status, resp.content_type, document

    async def refunds(self) -> list[Refund]:
        return await self.store.list_refunds(limit=1000)

    async def refund(self, refund_id: str) -> Refund:
        found = await self.store.find_refund("generic", SHOP, refund_id)
        assert found is not None, refund_id
        return found


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0,
                                   trades=[TradeSeed(TRADE_NO, Decimal("20.00"))])
    shop = SimulatedShop(SECRET)

    def intake_config(port: int, gateway_url: str, shop_url: str) -> Config:
        return config(tmp_path, port, gateway_url, shop_url + "/callback")

    async with adapter_loop(intake_config, sandbox=sandbox_config, shop=shop, request_timeout=DEADLINE) as loop:
        yield Intake(loop.url, loop.store, loop.sandbox, shop, loop.http)


# --- refused: nothing stored ------------------------------------------------------------------------------


def signed(body: dict[str, Any] | bytes, secret: str = SECRET, timestamp: int | None = None) -> tuple[
    dict[str, str], bytes
]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = standard_webhooks.signed_headers(secret, "msg-1", int(time.time()) if timestamp is None else timestamp,
                                               raw)
    return {**headers, "content-type": "application/json"}, raw


Case = Callable[[], tuple[dict[str, str], bytes, str]]
SHOP_PATH = f"/webhooks/generic/{SHOP}"


def case(body: dict[str, Any] | bytes, *, path: str = SHOP_PATH, **options: Any) -> Case:
    return lambda: (*signed(body, **options), path)


REFUSED: dict[str, tuple[Case, int, str]] = {
    "forged signature": (case(payload(), secret=OTHER_SECRET), 401, "invalid-signature"),
    "stale timestamp": (case(payload(), timestamp=int(time.time()) - 3600), 401, "stale-timestamp"),
    "unknown shop": (case(payload(), path="/webhooks/generic/no-such-shop"), 404, "unknown-shop"),
    "unknown platform": (case(payload(), path=f"/webhooks/shopify/{SHOP}"), 404, "unknown-platform"),
    "malformed JSON": (case(b'{"refund_id": "r-1", '), 400, "malformed-body"),
    "JSON array": (case(b"[]"), 400, "malformed-body"),
    "bare NaN": (case(json.dumps(payload()).replace('"12.30"', "NaN").encode()), 400, "malformed-body"),
    "missing refund_id": (case({k: v for k, v in payload().items() if k != "refund_id"}), 400, "malformed-body"),
    "body too large": (case(payload(reason="x" * MAX_BODY)), 413, "body-too-large"),
    "amount -1": (case(payload(amount="-1")), 422, "invalid-amount"),
    "amount 0": (case(payload(amount="0")), 422, "invalid-amount"),
    "amount 0.00": (case(payload(amount="0.00")), 422, "invalid-amount"),
    "amount NaN": (case(payload(amount="NaN")), 422, "invalid-amount"),
    "amount 1e2": (case(payload(amount="1e2")), 422, "invalid-amount"),
    "amount Infinity": (case(payload(amount="Infinity")), 422, "invalid-amount"),
    "amount as a JSON number": (case(payload(amount=12.3)), 422, "invalid-amount"),
    "amount past 12 digits": (case(payload(amount="1000000000000.00", paid_amount=None)), 422, "invalid-amount"),
}


@pytest.mark.parametrize(("make", "status", "slug"), REFUSED.values(), ids=REFUSED.keys())
async def test_refused_webhook_changes_nothing(intake: Intake, make: Case, status: int, slug: str) -> None:
    headers, body, path = make()
    answer_status, content_type, problem = await intake.send(headers, body, path)
    assert answer_status == status, problem
    assert content_type == "application/problem+json"
    assert problem["type"] == PROBLEM + slug
    assert problem["status"] == status
    assert await intake.refunds() == []
    assert (await intake.store.counts())["refunds"] == {}
    assert intake.sandbox.state.batches == {}


# --- a refund that cannot be paid: stored once, rejected, reported; the platform gets its 2xx ---------------------

UNPAYABLE: dict[str, tuple[dict[str, Any], str, str]] = {  # payload, code, amount stored
    "currency USD": (payload(currency="USD"), "UNSUPPORTED_CURRENCY", "12.30"),
    "no trade_no": ({k: v for k, v in payload().items() if k != "trade_no"}, "NO_ALIPAY_TRADE_NO", "12.30"),
    "trade_no not alphanumeric": (payload(trade_no="2026-1125"), "NO_ALIPAY_TRADE_NO", "12.30"),
    # Each passed a `re.match(...$)` or `isdigit` check somewhere, then jammed the Alipay batch it landed in.
    "trade_no ending in a newline": (payload(trade_no=TRADE_NO + "\n"), "NO_ALIPAY_TRADE_NO", "12.30"),
    "trade_no in full-width digits": (payload(trade_no="２０２６１１２５２２"), "NO_ALIPAY_TRADE_NO", "12.30"),
    "trade_no in Arabic-Indic digits": (payload(trade_no="٢٠٢٦١١٢٥"), "NO_ALIPAY_TRADE_NO", "12.30"),
    "trade_no of 65 characters": (payload(trade_no="2" * 65), "NO_ALIPAY_TRADE_NO", "12.30"),
    "amount 1.001": (payload(amount="1.001"), "AMOUNT_PRECISION", "1.01"),  # shown rounded up, never paid
    "amount 0.001": (payload(amount="0.001"), "AMOUNT_PRECISION", "0.01"),
    "amount over paid_amount": (payload(amount="20.01"), EXCEEDS_PAID_AMOUNT, "20.01"),
}


@pytest.mark.parametrize(("body", "code", "amount"), UNPAYABLE.values(), ids=UNPAYABLE.keys())
async def test_an_unpayable_refund_is_stored_once_rejected_and_reported(
    intake: Intake, body: dict[str, Any], code: str, amount: str
) -> None:
    headers, raw = signed_generic_webhook(SECRET, body, "msg-r-1")
    answers = [await intake.send(headers, raw) for _ in range(2)]  # a redelivery changes nothing
    assert [status for status, _, _ in answers] == [200, 200], answers
    (refund,) = await intake.refunds()
    assert (refund.state, refund.code, refund.request.amount) == (RefundState.REJECTED, code, Decimal(amount))

    async def reported() -> bool:
        return "r-1" in intake.shop.results

    await wait_until(reported, within=DEADLINE, what="the rejection reported to the shop")
    assert (intake.shop.results["r-1"]["status"], intake.shop.results["r-1"]["code"]) == ("failed", code)
    assert intake.sandbox.state.batches == {}  # nothing of it reached Alipay


# --- accepted -------------------------------------------------------------------------------------------


async def test_good_webhook_is_stored_once_however_often_it_is_replayed(intake: Intake) -> None:
    headers, body = signed_generic_webhook(SECRET, payload(), "msg-r-1")
    status, _, _ = await intake.send(headers, body)
    assert status == 200
    replays = await asyncio.gather(*(intake.send(headers, body) for _ in range(3)))
    assert [status for status, _, _ in replays] == [200] * 3
    (refund,) = await intake.refunds()
    request = refund.request
    assert (request.platform, request.shop, request.platform_refund_id) == ("generic", SHOP, "r-1")
    assert (request.trade_no, request.amount, request.paid_amount) == (TRADE_NO, Decimal("12.30"), Decimal("20.00"))

    async def reported() -> bool:
        return (await intake.refund("r-1")).report_state is ReportState.DELIVERED

    await wait_until(reported, within=DEADLINE, what="the refund's result reported")
    assert (await intake.refund("r-1")).state is RefundState.SUCCEEDED
    assert intake.sandbox.state.ledger.trades[TRADE_NO].refunded == Decimal("12.30")  # paid back once
    assert intake.shop.deliveries == 1


async def test_refunds_of_one_trade_beyond_its_paid_amount_are_rejected_and_reported(intake: Intake) -> None:
    first = payload(refund_id="r-1", amount="15.00")
    second = payload(refund_id="r-2", amount="5.01")  # 15.00 + 5.01 > 20.00 paid
    assert await intake.shop.send_refund(intake.http, intake.url, SHOP, first) == 200
    assert await intake.shop.send_refund(intake.http, intake.url, SHOP, second) == 200
    rejected = await intake.refund("r-2")
    assert (rejected.state, rejected.code, rejected.batch_no) == (RefundState.REJECTED, EXCEEDS_PAID_AMOUNT, None)

    async def both_reported() -> bool:
        return {"r-1", "r-2"} <= intake.shop.results.keys()

    await wait_until(both_reported, within=DEADLINE, what="both results reported to the shop")
    assert intake.shop.results["r-2"]["status"] == "failed"
    assert intake.shop.results["r-2"]["code"] == EXCEEDS_PAID_AMOUNT
    assert intake.shop.results["r-1"]["status"] == "succeeded"
    # Only the first ever reached Alipay.
    sent = [detail for batch in intake.sandbox.state.batches.values() for detail in batch.details]
    assert [(d.detail.trade.trade_no, d.detail.trade.amount) for d in sent] == [(TRADE_NO, Decimal("15.00"))]
    assert intake.sandbox.state.ledger.trades[TRADE_NO].refunded == Decimal("15.00")


async def test_reason_with_separators_and_over_256_bytes_is_cleaned_not_refused(intake: Intake) -> None:
    reason = "退款^原因|尺码$不对#" + "好" * 100  # 312 bytes of UTF-8 with every MAPI separator
    assert len(reason.encode()) > 256
    assert await intake.shop.send_refund(intake.http, intake.url, SHOP, payload(reason=reason)) == 200
    stored = (await intake.refund("r-1")).request.reason
    assert not set(stored) & set("^|$#")
    assert len(stored.encode()) <= 256
    assert stored.startswith("退款原因尺码不对好")

    async def received_by_alipay() -> bool:
        return any(batch.details for batch in intake.sandbox.state.batches.values())

    await wait_until(received_by_alipay, within=DEADLINE, what="the refund sent to the sandbox")
    (batch,) = intake.sandbox.state.batches.values()
    assert batch.details[0].detail.trade.reason == stored  # Alipay got exactly the cleaned reason


# --- conflicts: a known refund id sent again with other content ---------------------------------------------


async def test_a_redelivery_with_other_content_is_a_409_conflict_that_changes_nothing(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    headers, body = signed_generic_webhook(SECRET, payload(), "msg-r-1")
    assert (await intake.send(headers, body))[0] == 200
    stored = await intake.refund("r-1")
    identical = signed_generic_webhook(SECRET, payload(reason="edited by the merchant"), "msg-r-1-again")
    assert (await intake.send(*identical))[0] == 200  # the same refund: still a plain 2xx, nothing counted
    assert await metric_value(intake.http, intake.url, "refund_adapter_refund_conflicts_total", platform="generic") == 0

    caplog.clear()
    other_amount = signed_generic_webhook(SECRET, payload(amount="12.31", order_id="o-2"), "msg-r-1-changed")
    status, content_type, problem = await intake.send(*other_amount)
    assert (status, content_type) == (409, "application/problem+json")
    assert (problem["type"], problem["status"]) == (PROBLEM + "refund-conflict", 409)
    assert "'r-1': amount, order_id" in problem["detail"]
    assert "12.3" not in problem["detail"] and TRADE_NO not in problem["detail"]  # names fields, never values
    (warning,) = [r for r in caplog.records if "conflicts with stored refund" in r.getMessage()]
    assert warning.levelname == "WARNING" and "amount, order_id differ" in warning.getMessage()
    assert await metric_value(intake.http, intake.url, "refund_adapter_refund_conflicts_total", platform="generic") == 1
    assert (await intake.refund("r-1")).request == stored.request  # the first version stands
    assert len(await intake.refunds()) == 1

    async def reported() -> bool:
        return (await intake.refund("r-1")).report_state is ReportState.DELIVERED

    await wait_until(reported, within=DEADLINE, what="the refund's result reported")
    assert intake.sandbox.state.ledger.trades[TRADE_NO].refunded == Decimal("12.30")  # paid once, as first sent
    assert intake.shop.results["r-1"]["amount"] == "12.30"


async def test_a_conflict_answer_and_its_log_line_stay_small_whatever_the_refund_id(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    refund_id = "r" * 3000
    assert (await intake.send(*signed_generic_webhook(SECRET, payload(refund_id=refund_id), "msg-long")))[0] == 200
    caplog.clear()
    changed = signed_generic_webhook(SECRET, payload(refund_id=refund_id, amount="1.00"), "msg-long-2")
    status, _, problem = await intake.send(*changed)
    assert (status, problem["type"]) == (409, PROBLEM + "refund-conflict")
    assert len(problem["detail"]) < 300
    (warning,) = [r for r in caplog.records if "conflicts with stored refund" in r.getMessage()]
    assert len(warning.getMessage()) < 400
