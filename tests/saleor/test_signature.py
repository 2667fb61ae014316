"""`Saleor-Signature` checked as Saleor makes it: a detached RS256 JWS over the raw body, or the deprecated HMAC."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from refund_adapter_saleor import signature
from refund_adapter_saleor.signature import SignatureError

from .fake_saleor import hmac_signature, new_key

BODY = b'{"action": {"actionType": "REFUND", "amount": 12.3}}'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwks(*keys: dict) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_a_signature_made_as_saleor_makes_it_verifies() -> None:
    key = new_key()
    claimed = key.sign(BODY)
    header, payload, _ = claimed.split(".")
    assert payload == ""  # detached
    protected = json.loads(base64.urlsafe_b64decode(header + "=="))
    assert protected["b64"] is False and protected["crit"] == ["b64"] and protected["kid"] == key.kid
    assert signature.is_jws(claimed)
    assert signature.key_id(claimed) == key.kid
    signature.verify_jws(claimed, BODY, signature.public_keys(_jwks(key.jwk()))[key.kid])


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"12.3", b"12.4"), b""], ids=["space", "amount", "empty"])
def test_another_body_does_not_verify(body: bytes) -> None:
    key = new_key()
    public = signature.public_keys(_jwks(key.jwk()))[key.kid]
    with pytest.raises(SignatureError, match="does not verify"):
        signature.verify_jws(key.sign(BODY), body, public)


def test_another_key_under_the_same_kid_does_not_verify() -> None:
    mine, other = new_key(), new_key()
    with pytest.raises(SignatureError):
        signature.verify_jws(other.sign(BODY), BODY, signature.public_keys(_jwks(mine.jwk()))[mine.kid])


def test_a_jws_whose_payload_is_base64_is_refused() -> None:
    """Without `b64: false` the signature would cover base64url(body), and the body sent would be unchecked."""
    key = new_key()
    attached = jwt.api_jws.encode(BODY, key.private, "RS256", headers={"kid": key.kid})
    header, _, sig = attached.split(".")
    public = signature.public_keys(_jwks(key.jwk()))[key.kid]
    with pytest.raises(SignatureError):
        signature.verify_jws(f"{header}..{sig}", BODY, public)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_only_rs256_is_accepted(alg: str) -> None:
    """The algorithm confusions: an HMAC keyed with the public key, or no signature at all."""
    key = new_key()
    header = _b64(json.dumps({"alg": alg, "kid": key.kid, "b64": False, "crit": ["b64"]}).encode())
    forged = f"{header}..{_b64(b'anything')}"
    with pytest.raises(SignatureError):
        signature.verify_jws(forged, BODY, signature.public_keys(_jwks(key.jwk()))[key.kid])


@pytest.mark.parametrize(
    ("claimed", "message"),
    [
        ("not.a.jws", "not a JWS"),
        (_b64(b'{"alg": "RS256"}') + "..c2ln", "names no key"),
        (_b64(b'{"alg": "RS256", "kid": 7}') + "..c2ln", "must be a string"),
        ("a" * 5000 + "..", "longer than"),
    ],
    ids=["garbage", "no-kid", "kid-not-text", "too-long"],
)
def test_a_malformed_jws_names_no_key(claimed: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        signature.key_id(claimed)


def test_the_deprecated_hmac_is_the_hex_hmac_of_the_body() -> None:
    claimed = hmac_signature("webhook-secret", BODY)
    assert not signature.is_jws(claimed)
    signature.verify_hmac("webhook-secret", claimed, BODY)
    signature.verify_hmac("webhook-secret", claimed.upper(), BODY)
    with pytest.raises(SignatureError):
        signature.verify_hmac("another-secret", claimed, BODY)
    with pytest.raises(SignatureError):
        signature.verify_hmac("webhook-secret", claimed, BODY + b" ")


def test_the_jwks_yields_its_rs256_signing_keys_only() -> None:
    key, other = new_key(), new_key()
    keys = signature.public_keys(_jwks(
        key.jwk(),
        other.jwk() | {"use": "enc"},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "broken", "n": "!", "e": "AQAB"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        "not a key",
    ))
    assert list(keys) == [key.kid]


@pytest.mark.parametrize("document", [b"<html>", b"[]", b'{"keys": {}}'], ids=["not-json", "list", "keys-not-list"])
def test_a_jwks_that_is_not_one_is_an_error(document: bytes) -> None:
    with pytest.raises(SignatureError):
        signature.public_keys(document)
