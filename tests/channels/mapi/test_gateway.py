"""GatewayClient over real HTTP against the sandbox (and a scripted stub for what the sandbox never says)."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from refund_adapter.channels.mapi.detail_data import RefundDetail
from refund_adapter.channels.mapi.errors import error_code
from refund_adapter.channels.mapi.gateway import GatewayClient, NotifyVerification, SubmitKind, SubmitOutcome
from refund_adapter.channels.mapi.wire import SERVICE_REFUND, parse_alipay_time
from refund_adapter.channels.signing import MD5Scheme, verify
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import RunningSandbox, run_sandbox
from tests.sandbox import kit
from tests.sandbox.kit import (
    MD5_KEY,
    PARTNER,
    NotifyReceiver,
    detail,
    eventually,
    make_client,
    new_batch_no,
    sandbox_config,
    seed,
)

# The kit's fixtures, shared by name (a conftest belongs to another part of the suite).
alipay_http = kit.alipay_http
alipay_sandbox = kit.alipay_sandbox
gateway_client = kit.gateway_client
notify_receiver = kit.notify_receiver

SHORT = aiohttp.ClientTimeout(total=0.3)


@dataclass
class Stub:
    """A gateway that answers whatever the test scripts, and records what it was sent."""

    url: str = ""
    status: int = 200
    body: bytes = b'<?xml version="1.0" encoding="GBK"?><alipay><is_success>T</is_success></alipay>'
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # (method, raw query, body)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.rel_url.raw_query_string, await request.read()))
        return web.Response(status=self.status, body=self.body, content_type="text/xml")


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    stub = Stub()
    app = web.Application()
    app.router.add_route("*", "/gateway.do", stub.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stub.url = f"http://127.0.0.1:{runner.addresses[0][1]}/gateway.do"
    try:
        yield stub
    finally:
        await runner.cleanup()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: the port was free a moment ago and is closed again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/gateway.do"


async def _submit(
    client: GatewayClient,
    batch_no: str | None = None,
    *,
    details: list[RefundDetail] | None = None,
    notify_url: str | None = None,
    use_freeze_amount: bool = False,
) -> SubmitOutcome:
    """Refund 10.00 of T1 unless told otherwise."""
    return await client.submit(
        batch_no=batch_no or new_batch_no(),
        refund_date=beijing_now(),
        details=details or [detail("T1")],
        notify_url=notify_url,
        use_freeze_amount=use_freeze_amount,
    )


async def _faults(http: aiohttp.ClientSession, sandbox: RunningSandbox, spec: dict[str, object]) -> None:
    async with http.post(sandbox.base_url + "/sandbox/faults", json=spec) as resp:
        assert resp.status == 200


# --- submit ------------------------------------------------------------------------------------------------


async def test_accepted(alipay_sandbox: RunningSandbox, gateway_client: GatewayClient) -> None:
    batch_no = new_batch_no()
    assert await _submit(gateway_client, batch_no) == SubmitOutcome(SubmitKind.ACCEPTED)
    assert batch_no in alipay_sandbox.state.batches


async def test_processing(alipay_http: aiohttp.ClientSession) -> None:
    async with run_sandbox(sandbox_config(faults={"answer_processing": True})) as sandbox:
        batch_no = new_batch_no()
        outcome = await _submit(make_client(alipay_http, sandbox.url), batch_no)
        assert outcome.kind is SubmitKind.PROCESSING
        assert batch_no in sandbox.state.batches


async def test_resending_an_accepted_batch_is_a_duplicate_not_a_rejection(gateway_client: GatewayClient) -> None:
    batch_no = new_batch_no()
    assert (await _submit(gateway_client, batch_no)).kind is SubmitKind.ACCEPTED
    outcome = await _submit(gateway_client, batch_no)
    assert (outcome.kind, outcome.code) == (SubmitKind.DUPLICATE, "DUPLICATE_BATCH_NO")


@pytest.mark.parametrize(
    ("client_options", "batch_no", "code"),
    [
        ({}, "20200101R0001", "BATCH_NO_FORMAT_ERROR"),
        ({"partner": "2088000000000009"}, None, "ILLEGAL_PARTNER"),
        ({"sign_type": "RSA"}, None, "ILLEGAL_SIGN_TYPE"),
    ],
)
async def test_rejected_with_the_code(
    alipay_http: aiohttp.ClientSession,
    client_options: dict[str, str],
    batch_no: str | None,
    code: str,
) -> None:
    async with run_sandbox(sandbox_config(alipay_private_key=None, merchant_public_key=None)) as sandbox:
        outcome = await _submit(make_client(alipay_http, sandbox.url, **client_options), batch_no)
        assert (outcome.kind, outcome.code) == (SubmitKind.REJECTED, code)
        assert outcome.detail == error_code(code).meaning
        assert sandbox.state.batches == {}


async def test_a_refusal_one_detail_may_cause_is_told_apart(alipay_http: aiohttp.ClientSession) -> None:
    """DETAIL_DATA_FORMAT_ERROR names no detail: the engine must find it, so the outcome says a detail may be it."""
    async with run_sandbox(sandbox_config(faults={"refuse_trade": "T2"})) as sandbox:
        client = make_client(alipay_http, sandbox.url)
        outcome = await _submit(client, details=[detail("T1"), detail("T2")])
        assert (outcome.kind, outcome.code) == (SubmitKind.DETAIL_REFUSED, "DETAIL_DATA_FORMAT_ERROR")
        assert sandbox.state.batches == {}
        assert (await _submit(client, details=[detail("T1")])).kind is SubmitKind.ACCEPTED


async def test_a_wrong_key_is_rejected_as_illegal_sign(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox
) -> None:
    client = GatewayClient(
        alipay_http, gateway_url=alipay_sandbox.url, partner=PARTNER, scheme=MD5Scheme("wrong"), timeout=SHORT
    )
    assert await _submit(client) == SubmitOutcome(SubmitKind.REJECTED, "ILLEGAL_SIGN", "签名不正确")


async def test_a_timeout_is_unknown_and_resolved_with_the_same_batch_no(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    seed(alipay_sandbox, "T1")
    await _faults(alipay_http, alipay_sandbox, {"hang_seconds": {"value": 30, "times": 1}})
    impatient = make_client(alipay_http, alipay_sandbox.url, timeout=SHORT)
    batch_no = new_batch_no()
    outcome = await _submit(impatient, batch_no)
    assert (outcome.kind, outcome.detail) == (SubmitKind.UNKNOWN, "timed out")
    assert (await _submit(gateway_client, batch_no)).kind is SubmitKind.DUPLICATE
    batch = alipay_sandbox.state.batches[batch_no]
    await eventually(lambda: batch.evaluated, "the batch evaluated")
    query = await gateway_client.query(batch_no=batch_no)
    assert query.response is not None
    assert [item.result.trade.code for item in query.response.items] == ["SUCCESS"]


async def test_a_5xx_is_unknown(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient
) -> None:
    await _faults(alipay_http, alipay_sandbox, {"answer_5xx": 1})
    assert await _submit(gateway_client) == SubmitOutcome(SubmitKind.UNKNOWN, detail="HTTP 500")
    assert alipay_sandbox.state.batches == {}


async def test_a_refused_connection_is_unknown(alipay_http: aiohttp.ClientSession, closed_port_url: str) -> None:
    outcome = await _submit(make_client(alipay_http, closed_port_url))
    assert outcome.kind is SubmitKind.UNKNOWN
    assert outcome.detail.startswith("transport error: ClientConnectorError")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html><body>gateway maintenance</body></html>"),
        (200, b"is_success=T"),
        (200, b""),
        (200, b"<alipay><is_success>X</is_success></alipay>"),
        (200, b"<alipay><is_success>F</is_success></alipay>"),
        (302, b""),
        (404, b'<?xml version="1.0" encoding="GBK"?><alipay><is_success>F</is_success><error>X</error></alipay>'),
    ],
)
async def test_an_answer_we_cannot_read_is_unknown_never_rejected(
    alipay_http: aiohttp.ClientSession, stub: Stub, status: int, body: bytes
) -> None:
    stub.status, stub.body = status, body
    outcome = await _submit(make_client(alipay_http, stub.url))
    assert outcome.kind is SubmitKind.UNKNOWN and outcome.code is None


async def test_the_wire_format_gbk_with_the_charset_in_the_url(
    alipay_http: aiohttp.ClientSession, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(alipay_http, stub.url, charset="gbk")
    details = [detail("T1", "5.00", "协商退款"), detail("T2", "0.50", "尺码不合适")]
    outcome = await _submit(
        client, "20240315R0001", details=details, notify_url="https://shop.example/notify", use_freeze_amount=True
    )
    assert outcome.kind is SubmitKind.ACCEPTED
    [(method, query, body)] = stub.requests
    assert method == "POST"
    assert dict(parse_qsl(query)) == {"_input_charset": "gbk"}
    params = dict(parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="gbk", errors="strict"))
    assert verify(params, MD5Scheme(MD5_KEY, "gbk"))
    sign = params.pop("sign")
    assert abs(parse_alipay_time(params.pop("refund_date")) - beijing_now()) < timedelta(minutes=1)
    assert params == {
        "service": SERVICE_REFUND,
        "partner": PARTNER,
        "_input_charset": "gbk",
        "batch_no": "20240315R0001",
        "batch_num": "2",
        "detail_data": "T1^5.00^协商退款#T2^0.50^尺码不合适",
        "notify_url": "https://shop.example/notify",
        "use_freeze_amount": "Y",
        "sign_type": "MD5",
    }
    assert "20240315R0001" in caplog.text
    assert MD5_KEY not in caplog.text and sign not in caplog.text


def test_the_scheme_must_sign_in_the_request_charset(alipay_http: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="gbk"):
        GatewayClient(
            alipay_http,
            gateway_url="http://127.0.0.1:1/gateway.do",
            partner=PARTNER,
            scheme=MD5Scheme(MD5_KEY, "utf-8"),
            charset="gbk",
            timeout=SHORT,
        )


# --- notify_verify -----------------------------------------------------------------------------------------


async def test_notify_verify_true_false_invalid(
    alipay_http: aiohttp.ClientSession, notify_receiver: NotifyReceiver
) -> None:
    async with run_sandbox(sandbox_config(time_scale=1.0)) as sandbox:  # no retry for 4 minutes
        client = make_client(alipay_http, sandbox.url)
        notify_receiver.answers = ["fail"]
        await _submit(client, notify_url=notify_receiver.url())
        [received] = await notify_receiver.wait_for(1)
        assert await client.notify_verify(received.params["notify_id"]) is NotifyVerification.TRUE
        assert await client.notify_verify("0" * 32) is NotifyVerification.FALSE
        assert await client.notify_verify("") is NotifyVerification.INVALID


async def test_notify_verify_unknown_on_5xx_timeout_refusal_and_other_bodies(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, stub: Stub, closed_port_url: str
) -> None:
    client = make_client(alipay_http, alipay_sandbox.url, timeout=SHORT)
    await _faults(alipay_http, alipay_sandbox, {"answer_5xx": 1})
    assert await client.notify_verify("x") is NotifyVerification.UNKNOWN
    await _faults(alipay_http, alipay_sandbox, {"hang_seconds": {"value": 30, "times": 1}})
    assert await client.notify_verify("x") is NotifyVerification.UNKNOWN
    assert await make_client(alipay_http, closed_port_url).notify_verify("x") is NotifyVerification.UNKNOWN
    stub.body = b"TRUE"
    assert await make_client(alipay_http, stub.url).notify_verify("x") is NotifyVerification.UNKNOWN
    [(method, query, _)] = stub.requests
    assert method == "GET"
    assert dict(parse_qsl(query)) == {"service": "notify_verify", "partner": PARTNER, "notify_id": "x"}


# --- query -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_type", ["MD5", "RSA"])
async def test_query_by_batch_and_by_trade(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, sign_type: str
) -> None:
    client = make_client(alipay_http, alipay_sandbox.url, sign_type=sign_type)
    seed(alipay_sandbox, "T1", "10.00")
    first, second = new_batch_no(), new_batch_no()
    await _submit(client, first, details=[detail("T1", "6.00"), detail("T9", "1.00")])
    await _submit(client, second, details=[detail("T1", "6.00")])
    for batch_no in (first, second):
        batch = alipay_sandbox.state.batches[batch_no]
        await eventually(lambda batch=batch: batch.evaluated, "the batch evaluated")

    by_batch = await client.query(batch_no=first)
    assert by_batch.response is not None and by_batch.response.is_success
    assert [(i.batch_no, i.result.trade.trade_no, i.result.trade.code) for i in by_batch.response.items] == [
        (first, "T1", "SUCCESS"),
        (first, "T9", "TRADE_NOT_EXISTS"),
    ]
    by_trade = await client.query(trade_no="T1")
    assert by_trade.response is not None
    assert [(i.batch_no, i.result.trade.code) for i in by_trade.response.items] == [
        (first, "SUCCESS"),
        (second, "REFUND_AMOUNT_NOT_VALID"),
    ]
    both = await client.query(batch_no=second, trade_no="T1")
    assert both.response is not None and len(both.response.items) == 1


async def test_query_of_an_unknown_refund(gateway_client: GatewayClient) -> None:
    for outcome in (await gateway_client.query(batch_no=new_batch_no()), await gateway_client.query(trade_no="T7")):
        assert outcome.response is not None
        assert (outcome.response.is_success, outcome.response.error_code) == (False, "REFUND_NOT_EXIST")
        assert outcome.detail == "REFUND_NOT_EXIST"


async def test_query_of_a_batch_still_being_evaluated_has_no_items_yet(alipay_http: aiohttp.ClientSession) -> None:
    async with run_sandbox(sandbox_config(evaluation_delay_seconds=60)) as sandbox:
        client = make_client(alipay_http, sandbox.url)
        batch_no = new_batch_no()
        await _submit(client, batch_no)
        outcome = await client.query(batch_no=batch_no)
        assert outcome.response is not None
        assert (outcome.response.is_success, outcome.response.items) == (True, ())


async def test_query_answer_unknown_on_5xx_and_unreadable_bodies(
    alipay_http: aiohttp.ClientSession, alipay_sandbox: RunningSandbox, gateway_client: GatewayClient, stub: Stub
) -> None:
    await _faults(alipay_http, alipay_sandbox, {"answer_5xx": 1})
    outcome = await gateway_client.query(batch_no=new_batch_no())
    assert (outcome.response, outcome.detail) == (None, "HTTP 500")
    stub.body = b"is_success=maybe"
    outcome = await make_client(alipay_http, stub.url).query(trade_no="T1")
    assert outcome.response is None and outcome.detail.startswith("unparsable answer")


async def test_query_needs_a_batch_or_a_trade(gateway_client: GatewayClient) -> None:
    with pytest.raises(ValueError, match="batch_no or a trade_no"):
        await gateway_client.query()
