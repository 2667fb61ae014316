"""Signing vectors, checked against two independent implementations: `cryptography` used directly on the
documented canonical string, and the peer package python-alipay-sdk (what merchants' Python code uses).

Our request signature verifies with both; an answer signed by the peer verifies with ours, and ours with the
peer's reader; any changed character of what was signed, or of the signature, fails.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from alipay import AliPay
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from refund_adapter.channels.openapi.messages import METHOD_REFUND, App, refund_biz, signed_request
from refund_adapter.channels.openapi.outcomes import RefundKind, refund_answer
from refund_adapter.channels.openapi.response import read_response, render_body, render_node, response_node
from refund_adapter.channels.openapi.signing import Signer, canonical_string

from .conftest import private_pem, public_pem

HASH = {"RSA2": hashes.SHA256, "RSA": hashes.SHA1}
NOW = datetime(2026, 12, 7, 2, 30, 5, tzinfo=UTC)  # 10:30:05 in Beijing
APP = App("2021000000000001", app_auth_token="202612BB1234")
# The documented canonical string of this request: every parameter but `sign` (sign_type included), sorted by
# key, raw values, joined by & (§9; the official SDKs' getSignContent).
CANONICAL = (
    "app_auth_token=202612BB1234&app_id=2021000000000001"
    '&biz_content={"trade_no":"2026120722001400001","refund_amount":"12.30",'
    '"out_request_no":"RA0123","refund_reason":"尺码不合 & 退货"}'
    "&charset=utf-8&format=JSON&method=alipay.trade.refund&sign_type={sign_type}"
    "&timestamp=2026-12-07 10:30:05&version=1.0"
)


def _request(sign_type: str, app_key: rsa.RSAPrivateKey) -> dict[str, str]:
    biz = refund_biz("2026120722001400001", Decimal("12.30"), "RA0123", "尺码不合 & 退货")
    return signed_request(APP, METHOD_REFUND, biz, NOW, Signer(sign_type, private_key=app_key))


def _peer(sign_type: str, private_key: rsa.RSAPrivateKey, peer_key: rsa.RSAPrivateKey) -> AliPay:
    """The peer SDK holding `private_key` and trusting `peer_key`'s public half."""
    return AliPay(appid=APP.app_id, app_private_key_string=private_pem(private_key),
                  alipay_public_key_string=public_pem(peer_key), sign_type=sign_type)


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_request_signature_verifies_with_cryptography_over_the_documented_string(
    sign_type: str, app_key: rsa.RSAPrivateKey
) -> None:
    params = _request(sign_type, app_key)
    documented = CANONICAL.replace("{sign_type}", sign_type)
    assert canonical_string(params) == documented
    signature = base64.b64decode(params["sign"])
    app_key.public_key().verify(signature, documented.encode("utf-8"), padding.PKCS1v15(), HASH[sign_type]())
    for index in range(len(documented)):  # any changed character fails
        changed = documented[:index] + chr(ord(documented[index]) ^ 1) + documented[index + 1 :]
        with pytest.raises(InvalidSignature):
            app_key.public_key().verify(signature, changed.encode("utf-8"), padding.PKCS1v15(), HASH[sign_type]())


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_request_signature_is_the_peers_and_the_peer_verifies_it(
    sign_type: str, app_key: rsa.RSAPrivateKey
) -> None:
    params = _request(sign_type, app_key)
    unsigned = {key: value for key, value in params.items() if key != "sign"}
    peer_signed = dict(parse_qsl(_peer(sign_type, app_key, app_key).sign_data(dict(unsigned))))
    assert peer_signed["sign"] == params["sign"]  # PKCS#1 v1.5 is deterministic: the same bytes were signed
    verifier = _peer(sign_type, app_key, app_key)  # trusts the app's public key, as Alipay's gateway does
    assert verifier._verify(canonical_string(params), params["sign"])
    assert not verifier._verify(canonical_string({**params, "timestamp": "2026-12-07 10:30:06"}), params["sign"])
    assert Signer(sign_type, peer_public_key=app_key.public_key()).verify_params(params)
    assert not Signer(sign_type, peer_public_key=app_key.public_key()).verify_params({**params, "version": "1.1"})


ANSWER = {
    "code": "10000", "msg": "Success", "trade_no": "2026120722001400001", "out_trade_no": "shop-1001",
    "buyer_logon_id": "159****5620", "fund_change": "Y", "refund_fee": "12.30", "gmt_refund_pay": "2026-12-07 10:30:06",
    "send_back_fee": "12.30", "note": "{braces} and \"quotes\" 中文",
}


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_an_answer_signed_by_the_peer_verifies_with_ours_and_any_changed_byte_fails(
    sign_type: str, app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    text = render_node(ANSWER)
    peer_as_alipay = _peer(sign_type, alipay_key, app_key)
    body = render_body(response_node(METHOD_REFUND), text, peer_as_alipay._sign(text))
    ours = Signer(sign_type, peer_public_key=alipay_key.public_key())
    assert refund_answer(body.encode(), ours, "2026120722001400001").kind is RefundKind.SUCCEEDED
    raw = read_response(body, METHOD_REFUND)
    assert raw.text == text and raw.sign is not None
    start = body.index(text)
    for index in range(start, start + len(text)):
        changed = body[:index] + chr(ord(body[index]) ^ 1) + body[index + 1 :]
        assert refund_answer(changed.encode(), ours, "2026120722001400001").kind is not RefundKind.SUCCEEDED
    forged = raw.sign[:10] + ("A" if raw.sign[10] != "A" else "B") + raw.sign[11:]
    assert not ours.verify_text(text, forged)


@pytest.mark.parametrize("sign_type", ["RSA2", "RSA"])
def test_an_answer_we_sign_verifies_with_the_peers_reader(
    sign_type: str, app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey
) -> None:
    text = render_node({k: v for k, v in ANSWER.items() if k != "note"})  # the peer's brace counter needs no braces
    body = render_body(response_node(METHOD_REFUND), text, Signer(sign_type, private_key=alipay_key).sign_text(text))
    assert _peer(sign_type, app_key, alipay_key)._verify_and_return_sync_response(
        body, response_node(METHOD_REFUND)
    )["fund_change"] == "Y"


def test_the_raw_node_text_is_what_is_verified_not_a_re_serialised_copy(alipay_key: rsa.RSAPrivateKey) -> None:
    """Alipay's bytes: spaces, key order and \\u escapes as sent. json.dumps of the parsed node would differ."""
    text = ('{ "code" : "10000","msg":"Success","trade_no":"2026120722001400001","fund_change":"Y",'
            '"note":"\\u9000\\u6b3e }{" }')
    sign = Signer("RSA2", private_key=alipay_key).sign_text(text)
    body = '{"sign":"' + sign + '",\n "alipay_trade_refund_response" :' + text + "}"
    ours = Signer("RSA2", peer_public_key=alipay_key.public_key())
    assert read_response(body, METHOD_REFUND).text == text
    assert refund_answer(body.encode(), ours, "2026120722001400001").kind is RefundKind.SUCCEEDED
