"""`batch_no` (§1.2): the Beijing day it was opened and a serial derived from the batch's own id, never minted twice."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime

from ..base import ReferenceMaker
from .wire import BATCH_NO_ERROR, AlipayFormatError, check_token, match_token

_NAMESPACE = re.compile(r"[0-9A-Z]{0,8}")
_BATCH = re.compile(r"([0-9]{8})([0-9A-Za-z]{3,24})")


def _plain_date(day: date, field: str) -> date:
    """A datetime here is almost always a zone mistake (take `beijing_now().date()`), so refuse it."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise AlipayFormatError(field, "must be a date (not a datetime)", code=BATCH_NO_ERROR)
    return day


def _base36(number: int) -> str:
    """Uppercase base 36: the densest encoding the serial's [0-9A-Z] allows."""
    digits = ""
    while number:
        number, digit = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
    return digits


def batch_serial(namespace: str, batch_id: int) -> str:
    """Derive the serial from the batch's own id so a retry can never mint a second batch_no.

    The namespace (an install id) keeps two databases sharing one partner apart. Installs must use
    namespaces of one length: "A" + "1000001" equals "A1" + "000001".
    """
    check_token(namespace, "namespace", _NAMESPACE, "must be 0..8 characters [0-9A-Z]", BATCH_NO_ERROR)
    if isinstance(batch_id, bool) or not isinstance(batch_id, int) or batch_id < 1:
        raise AlipayFormatError("batch_id", "must be an int >= 1", code=BATCH_NO_ERROR)
    serial = namespace + _base36(batch_id).rjust(6, "0")
    if len(serial) > 24:
        raise AlipayFormatError("batch_id", f"is too large for namespace {namespace!r}", code=BATCH_NO_ERROR)
    return serial


def batch_no_date(batch_no: str, field: str = "batch_no") -> date:
    """The Beijing day a batch was opened on, read back from its number once it obeys the §1.2 grammar."""
    found = match_token(batch_no, field, _BATCH, "must be yyyyMMdd + 3..24 characters [0-9A-Za-z]", BATCH_NO_ERROR)
    day, serial = found.groups()
    if not serial.strip("0"):
        raise AlipayFormatError(field, "serial must not be all zeros", code=BATCH_NO_ERROR)
    try:
        return date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        raise AlipayFormatError(field, "does not start with a real date", code=BATCH_NO_ERROR) from None


def validate_batch_no(batch_no: str, *, today: date | None = None) -> str:
    """Return batch_no once valid; with `today` (Beijing) also require Alipay's same-day rule."""
    day = batch_no_date(batch_no)
    if today is not None and day != _plain_date(today, "today"):
        raise AlipayFormatError("batch_no", f"date {day} is not today ({today}) in Beijing", code=BATCH_NO_ERROR)
    return batch_no


def build_batch_no(day: date, namespace: str, batch_id: int) -> str:
    """yyyyMMdd (the Beijing day) + `batch_serial`."""
    day8 = _plain_date(day, "day").isoformat().replace("-", "")
    return validate_batch_no(day8 + batch_serial(namespace, batch_id))


def batch_nos(day: date) -> ReferenceMaker:
    """How the MAPI channel names the batches it forms on a Beijing `day` (`MapiChannel.references`)."""
    return functools.partial(build_batch_no, day)
