"""Signatures reproduce the reference vectors of §2.5 exactly and RSA round-trips with generated keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from refund_adapter.channels.signing import (
    MD5Scheme,
    SigningError,
    canonical_string,
    load_private_key,
    load_public_key,
    make_scheme,
    signed,
    verify,
)

DOC_KEY = "1234567890abcdefghijklmnopqrstuv"

REFUND_REQUEST = {
    "service": "refund_fastpay_by_platform_nopwd",
    "partner": "2088101008267254",
    "_input_charset": "utf-8",
    "notify_url": "http://api.test.alipay.net/atinterface/receive_notify.htm",
    "batch_no": "201101120001",
    "refund_date": "2011-01-12 11:21:00",
    "batch_num": "1",
    "detail_data": "2011011201037066^5.00^协商退款",
}

TWO_DETAILS = {
    "_input_charset": "utf-8",
    "batch_no": "20240315R0001",
    "batch_num": "2",
    "detail_data": "2024031421001004670000000001^10.00^refund A#2024031421001004670000000002^0.50^refund B",
    "notify_url": "https://merchant.example.com/alipay/refund_notify",
    "partner": "2088101008267254",
    "refund_date": "2024-03-15 10:00:00",
    "service": "refund_fastpay_by_platform_nopwd",
    "dback_notify_url": "",
}

NOTIFY = {
    "notify_time": "2009-08-12 11:08:32",
    "notify_type": "batch_refund_notify",
    "notify_id": "70fec0c2730b27528665af4517c27b95",
    "batch_no": "20060702001",
    "success_num": "1",
    "result_details": "2010031206252779^10.00^SUCCESS",
    "sign": "0c1c26c8451086d2412a993280fd8623",
    "sign_type": "MD5",
}


def test_public_vector_canonical_string_and_md5() -> None:
    params = {"aaa": 111, "bbb": 2222, "ccc": 3333, "dd": "", "eee": None, "fff": False, "ggg": True}
    assert canonical_string(params) == "aaa=111&bbb=2222&ccc=3333&ggg=1"
    assert MD5Scheme("hello").sign(params) == "7e63e20bcc6ad2ba695305e340592ffd"


def test_canonical_string_sorts_by_bytes_drops_sign_fields_and_keeps_raw_values() -> None:
    text = canonical_string({**REFUND_REQUEST, "sign": "x", "sign_type": "MD5"})
    assert text.startswith("_input_charset=utf-8&batch_no=")
    assert "sign" not in text.replace("service", "")
    assert "refund_date=2011-01-12 11:21:00" in text  # the literal space, not + or %20
    assert "notify_url=http://api.test.alipay.net/" in text  # not percent-encoded


@pytest.mark.parametrize(
    ("charset", "expected"),
    [("utf-8", "8cfe4ed0948d591df8039bb2d387d9fd"), ("gbk", "49741dc64b32c96d865765ffb7fad38b")],
)
def test_refund_request_vector_in_each_charset(charset: str, expected: str) -> None:
    assert MD5Scheme(DOC_KEY, charset).sign(REFUND_REQUEST) == expected


def test_two_detail_vector_drops_empty_dback_notify_url() -> None:
    assert MD5Scheme(DOC_KEY).sign(TWO_DETAILS) == "012502069bcb4c12776de1152694be18"


def test_notify_vector_verifies_and_a_changed_value_does_not() -> None:
    scheme = MD5Scheme(DOC_KEY)
    assert verify(NOTIFY, scheme)
    assert not verify({**NOTIFY, "result_details": "2010031206252779^10.01^SUCCESS"}, scheme)
    assert not verify({**NOTIFY, "sign_type": "RSA"}, scheme)
    assert not verify({**NOTIFY, "sign": ""}, scheme)


def test_signed_adds_sign_and_type_and_verifies() -> None:
    scheme = make_scheme("MD5", md5_key=DOC_KEY)
    wire = signed(REFUND_REQUEST, scheme)
    assert wire["sign"] == "8cfe4ed0948d591df8039bb2d387d9fd"
    assert wire["sign_type"] == "MD5"
    assert verify(wire, scheme)


def test_md5_with_a_value_the_charset_cannot_encode_fails_verification_not_crashes() -> None:
    scheme = MD5Scheme(DOC_KEY, "gbk")
    assert not verify({**NOTIFY, "result_details": "2010^1.00^\U0001f600"}, scheme)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def test_rsa_round_trip_and_any_changed_byte_fails(rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    merchant, alipay = rsa_keys
    ours = make_scheme("RSA", private_key=merchant, peer_public_key=alipay.public_key())
    theirs = make_scheme("RSA", private_key=alipay, peer_public_key=merchant.public_key())
    wire = signed(REFUND_REQUEST, ours)
    assert wire["sign_type"] == "RSA"
    assert verify(wire, theirs)
    assert not verify({**wire, "batch_num": "2"}, theirs)
    raw = bytearray(wire["sign"].encode())
    raw[10] = ord("A") if raw[10] != ord("A") else ord("B")
    assert not verify({**wire, "sign": raw.decode()}, theirs)
    assert not verify({**wire, "sign": "not base64!"}, theirs)
    # The merchant's own public key does not verify what Alipay signed: notifies need Alipay's key.
    notify = signed(NOTIFY, theirs)
    assert verify(notify, ours)
    assert not verify(notify, make_scheme("RSA", peer_public_key=merchant.public_key()))


@pytest.mark.parametrize(
    "private_format",
    [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8],
)
@pytest.mark.parametrize(
    ("public_encoding", "public_format"),
    [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    ],
)
def test_keys_load_from_pkcs1_and_pkcs8_pem(
    rsa_keys: tuple[rsa.RSAPrivateKey, ...],
    private_format: serialization.PrivateFormat,
    public_encoding: serialization.Encoding,
    public_format: serialization.PublicFormat,
) -> None:
    key = rsa_keys[0]
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(public_encoding, public_format)
    loaded = make_scheme("RSA", private_key=load_private_key(private_pem),
                         peer_public_key=load_public_key(public_pem))
    assert verify(signed(NOTIFY, loaded), loaded)


def test_bare_base64_keys_as_alipay_hands_them_out(rsa_keys: tuple[rsa.RSAPrivateKey, ...]) -> None:
    key = rsa_keys[0]
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    bare = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    assert load_public_key(bare).public_numbers() == key.public_key().public_numbers()


def test_unreadable_or_non_rsa_keys_raise_signing_error() -> None:
    with pytest.raises(SigningError, match="private key"):
        load_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SigningError, match="not an RSA key"):
        load_private_key(ec_pem)


@pytest.mark.parametrize("sign_type", ["DSA", "md5", "RSA2", ""])
def test_unsupported_sign_type_is_a_clear_error(sign_type: str) -> None:
    with pytest.raises(SigningError, match="unsupported sign_type"):
        make_scheme(sign_type, md5_key=DOC_KEY)


def test_md5_scheme_needs_a_key_and_never_shows_it() -> None:
    with pytest.raises(SigningError, match="md5 key"):
        make_scheme("MD5")
    assert DOC_KEY not in repr(MD5Scheme(DOC_KEY))
