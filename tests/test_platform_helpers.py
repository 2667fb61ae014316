"""Helpers `refund_adapter.platform` and `refund_adapter.signatures` offer every plugin."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from refund_adapter.platform import WebhookRejected, json_object, non_empty_string, retry_after_seconds
from refund_adapter.signatures import hmac_base64, hmac_base64_matches, hmac_digest, hmac_hex_matches


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = retry_after_seconds(later)
    assert seconds is not None and 110 < seconds <= 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_hmac_base64_matches_any_secret_in_constant_time_and_refuses_garbage() -> None:
    body = b'{"id": 1}'
    signature = hmac_base64("new", body)
    assert hmac_base64_matches(["old", "new"], body, signature)
    assert not hmac_base64_matches(["old"], body, signature)
    assert not hmac_base64_matches(["new"], body + b" ", signature)
    assert not hmac_base64_matches(["new"], body, hmac_base64("new", body, "sha1"))
    assert hmac_base64_matches(["new"], body, hmac_base64("new", body, "sha1"), "sha1")
    for garbage in (None, "", "not base64!", "ünïcode"):
        assert not hmac_base64_matches(["new"], body, garbage)


def test_hmac_hex_matches_any_secret_in_either_case_and_raw_keys_too() -> None:
    body = b'{"id": 1}'
    signature = hmac.new(b"new", body, hashlib.sha256).hexdigest()
    assert hmac_hex_matches(["old", "new"], body, signature)
    assert hmac_hex_matches([b"new"], body, signature.upper())
    assert hmac_digest(b"new", body) == bytes.fromhex(signature)
    assert not hmac_hex_matches(["old"], body, signature)
    assert not hmac_hex_matches(["new"], body + b" ", signature)
    for garbage in (None, "", "zz", signature[:-1], "ünïcode"):
        assert not hmac_hex_matches(["new"], body, garbage)


def test_json_object_refuses_non_objects_and_non_json_constants() -> None:
    assert json_object(b'{"a": "x"}') == {"a": "x"}
    for body in (b"[1]", b"{", b"\xff", b'{"a": NaN}'):
        with pytest.raises(WebhookRejected) as caught:
            json_object(body)
        assert (caught.value.status, caught.value.type) == (400, "malformed-body")
    assert json_object(b'{"a": NaN}', allow_nan=True)["a"] != 0


def test_non_empty_string_names_the_field() -> None:
    assert non_empty_string({"id": "r1"}, "id") == "r1"
    for document in ({}, {"id": ""}, {"id": 1}):
        with pytest.raises(WebhookRejected, match="id must be a non-empty string"):
            non_empty_string(document, "id")
