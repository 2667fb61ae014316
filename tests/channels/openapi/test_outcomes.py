"""What each answer proves: only a signed 10000 with fund_change=Y is a success, fund_change=N waits for the
query, ACQ business codes fail with their meaning, everything doubtful is unknown, rate limits back off."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.channels.openapi.idempotency import out_request_no
from refund_adapter.channels.openapi.messages import METHOD_REFUND, METHOD_REFUND_QUERY
from refund_adapter.channels.openapi.outcomes import QueryKind, RefundKind, query_answer, refund_answer
from refund_adapter.channels.openapi.response import (
    ResponseFormatError,
    read_response,
    render_body,
    render_node,
    response_node,
)
from refund_adapter.channels.openapi.signing import Signer

TRADE = "2026120722001400001"
OUT = "RA0123"


def _body(key: rsa.RSAPrivateKey, method: str, fields: dict[str, Any], *, signed: bool = True) -> bytes:
    text = render_node(fields)
    sign = Signer("RSA2", private_key=key).sign_text(text) if signed else None
    return render_body(response_node(method), text, sign).encode()


@pytest.fixture
def ours(alipay_key: rsa.RSAPrivateKey) -> Signer:
    return Signer("RSA2", peer_public_key=alipay_key.public_key())


@pytest.mark.parametrize(("fields", "kind", "code"), [
    ({"code": "10000", "fund_change": "Y"}, RefundKind.SUCCEEDED, "10000"),
    ({"code": "10000", "fund_change": "N"}, RefundKind.ALREADY_DONE, "10000"),
    ({"code": "10000"}, RefundKind.UNKNOWN, "10000"),
    ({"code": "40004", "sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH"}, RefundKind.FAILED,
     "ACQ.SELLER_BALANCE_NOT_ENOUGH"),
    ({"code": "40004", "sub_code": "ACQ.TRADE_HAS_FINISHED"}, RefundKind.FAILED, "ACQ.TRADE_HAS_FINISHED"),
    ({"code": "40004", "sub_code": "ACQ.SOMETHING_NEW"}, RefundKind.FAILED, "ACQ.SOMETHING_NEW"),
    ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, RefundKind.UNKNOWN, "ACQ.SYSTEM_ERROR"),
    ({"code": "40004", "sub_code": "ACQ.DISCORDANT_REPEAT_REQUEST"}, RefundKind.UNKNOWN,
     "ACQ.DISCORDANT_REPEAT_REQUEST"),
    ({"code": "20000", "sub_code": "isp.unknow-error"}, RefundKind.UNKNOWN, "isp.unknow-error"),
    ({"code": "40002", "sub_code": "isv.invalid-signature"}, RefundKind.UNKNOWN, "isv.invalid-signature"),
    ({"code": "40005", "sub_code": "isv.app-call-limited"}, RefundKind.RATE_LIMITED, "isv.app-call-limited"),
])
def test_refund_answers(alipay_key: rsa.RSAPrivateKey, ours: Signer, fields: dict[str, Any], kind: RefundKind,
                        code: str) -> None:
    answer = refund_answer(_body(alipay_key, METHOD_REFUND, {"msg": "m", "trade_no": TRADE, **fields}), ours, TRADE)
    assert (answer.kind, answer.code) == (kind, code)
    if kind is RefundKind.FAILED:
        assert answer.detail  # shown with its meaning


def test_a_failure_from_the_table_carries_its_meaning(alipay_key: rsa.RSAPrivateKey, ours: Signer) -> None:
    fields = {"code": "40004", "sub_code": "ACQ.SELLER_BALANCE_NOT_ENOUGH", "trade_no": TRADE}
    assert "卖家余额不足" in refund_answer(_body(alipay_key, METHOD_REFUND, fields), ours, TRADE).detail


@pytest.mark.parametrize("body", [
    b"", b"<html>502</html>", b'{"alipay_trade_refund_response":', b'{"other_response":{"code":"10000"}}',
    b'{"alipay_trade_refund_response":{"code":"10000"},"alipay_trade_refund_response":{"code":"10000"}}',
    "{\"alipay_trade_refund_response\":{}}".encode("utf-16"),
])
def test_unreadable_answers_are_unknown(ours: Signer, body: bytes) -> None:
    assert refund_answer(body, ours, TRADE).kind is RefundKind.UNKNOWN


def test_unsigned_or_wrongly_signed_successes_are_unknown(alipay_key: rsa.RSAPrivateKey, ours: Signer,
                                                          app_key: rsa.RSAPrivateKey) -> None:
    fields = {"code": "10000", "fund_change": "Y", "trade_no": TRADE}
    assert refund_answer(_body(alipay_key, METHOD_REFUND, fields, signed=False), ours, TRADE).kind \
        is RefundKind.UNKNOWN
    assert refund_answer(_body(app_key, METHOD_REFUND, fields), ours, TRADE).kind is RefundKind.UNKNOWN
    other_trade = {**fields, "trade_no": "2026120722001400002"}
    assert refund_answer(_body(alipay_key, METHOD_REFUND, other_trade), ours, TRADE).kind is RefundKind.UNKNOWN


def test_an_unsigned_rate_limit_still_backs_off(alipay_key: rsa.RSAPrivateKey, ours: Signer) -> None:
    fields = {"code": "40005", "msg": "Call Limited", "sub_code": "isv.method-call-limited"}
    assert refund_answer(_body(alipay_key, METHOD_REFUND, fields, signed=False), ours, TRADE).kind \
        is RefundKind.RATE_LIMITED


def test_the_gateways_error_response_is_read(alipay_key: rsa.RSAPrivateKey, ours: Signer) -> None:
    text = render_node({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"})
    raw = read_response(render_body("error_response", text, None), METHOD_REFUND)
    assert raw.node_name == "error_response" and raw.sign is None
    assert refund_answer(render_body("error_response", text, None).encode(), ours, TRADE).kind is RefundKind.UNKNOWN


@pytest.mark.parametrize(("fields", "kind", "amount"), [
    ({"code": "10000", "refund_amount": "12.30"}, QueryKind.REFUNDED, Decimal("12.30")),
    ({"code": "10000", "refund_amount": "12.30", "refund_status": "REFUND_SUCCESS"}, QueryKind.REFUNDED,
     Decimal("12.30")),
    ({"code": "10000", "refund_amount": "12.30", "refund_status": "REFUND_PROCESSING"}, QueryKind.UNKNOWN,
     Decimal("12.30")),
    ({"code": "10000"}, QueryKind.NOT_REFUNDED, None),
    ({"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}, QueryKind.NOT_REFUNDED, None),
    ({"code": "40004", "sub_code": "TRADE_NOT_EXIST"}, QueryKind.NOT_REFUNDED, None),
    ({"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"}, QueryKind.UNKNOWN, None),
    ({"code": "20000"}, QueryKind.UNKNOWN, None),
    ({"code": "40005"}, QueryKind.RATE_LIMITED, None),
    ({"code": "10000", "refund_amount": "12.30", "out_request_no": "RA9999"}, QueryKind.UNKNOWN, None),
])
def test_query_answers(alipay_key: rsa.RSAPrivateKey, ours: Signer, fields: dict[str, Any], kind: QueryKind,
                       amount: Decimal | None) -> None:
    body = _body(alipay_key, METHOD_REFUND_QUERY, {"msg": "m", "trade_no": TRADE, "out_request_no": OUT, **fields})
    answer = query_answer(body, ours, TRADE, OUT)
    assert answer.kind is kind
    if amount is not None:
        assert answer.amount == amount


def test_a_query_success_that_is_not_signed_is_unknown(alipay_key: rsa.RSAPrivateKey, ours: Signer) -> None:
    fields = {"code": "10000", "trade_no": TRADE, "out_request_no": OUT, "refund_amount": "1.00"}
    assert query_answer(_body(alipay_key, METHOD_REFUND_QUERY, fields, signed=False), ours, TRADE, OUT).kind \
        is QueryKind.UNKNOWN


def test_a_body_with_trailing_garbage_is_refused() -> None:
    with pytest.raises(ResponseFormatError):
        read_response('{"alipay_trade_refund_response":{"code":"10000"} x}', METHOD_REFUND)


def test_out_request_no_is_stable_distinct_and_within_alipays_limits() -> None:
    first = out_request_no("shopify", "s.myshopify.com", "1001")
    assert first == out_request_no("shopify", "s.myshopify.com", "1001")
    assert len(first) <= 64 and first.isascii() and first.isalnum()
    keys = [("shopify", "s.myshopify.com", "1002"), ("generic", "s.myshopify.com", "1001"),
            ("shopify", "s.myshopify.com|1", "001"), ("shopify", "s.myshopify.com", "1001 ")]
    others = {out_request_no(*key) for key in keys}
    assert first not in others and len(others) == 4
    assert out_request_no("p", "店铺" * 100, "x" * 500).isalnum()
