"""Helpers `refund_adapter.platform` offers every plugin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from refund_adapter.platform import retry_after_seconds


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    seconds = retry_after_seconds(later)
    assert seconds is not None and 110 < seconds <= 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
