"""Alipay's asynchronous notifies: believed only when signed by the batch's account, confirmed by
`notify_verify`, and about the batch we sent; recorded idempotently before we answer `success` (a result that
contradicts the record is not applied but flags its refund for review: results.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..channels.mapi.notify import parse_dback_notify, parse_refund_notify, read_notify_id
from ..channels.mapi.results import ResultItem, encode_result_details
from ..channels.mapi.wire import AlipayFormatError
from ..failpoints import AFTER_NOTIFY_VERIFIED, crash_point
from ..models import Batch, DetailResult
from ..untrusted import bounded, quote
from .channel import MapiChannel, decode_form
from .results import record_verdicts
from .runtime import EngineContext

log = logging.getLogger(__name__)

# Decoding a form is pure Python, about a second for a megabyte of `a=b&a=b...` or of %-escapes, partly in long
# calls that hold the interpreter even on a thread. A genuine notify has a dozen fields or so, and one of 1000
# details (with its unfreezed details) some 12,000 %-escapes in 170 KB: a body with more fields or escapes than
# these is refused undecoded, and one larger than INLINE_DECODE_BYTES is decoded and verified on a thread.
MAX_NOTIFY_FIELDS = 64
MAX_NOTIFY_ESCAPES = 24_000
INLINE_DECODE_BYTES = 16 * 1024
SUCCESS = "success"  # the exact body Alipay waits for; anything else makes it send again
FAIL = "fail"
REFUND_KIND = "refund"
DBACK_KIND = "dback"


# How a notify ended, for the `refund_adapter_notifies_total` counter (refund_adapter/metrics.py).
ACCEPTED, DUPLICATE, ANOMALY = "accepted", "duplicate", "anomaly"
FORGED, UNVERIFIED, UNKNOWN_BATCH, UNKNOWN_ACCOUNT = "forged", "unverified", "unknown_batch", "unknown_account"
MALFORMED, MISMATCH = "malformed", "mismatch"


@dataclass(frozen=True)
class NotifyAnswer:
    body: str
    reason: str  # why, for the log (never shown to the sender)
    outcome: str  # one of the outcomes above

    @property
    def accepted(self) -> bool:
        return self.body == SUCCESS


@dataclass(frozen=True)
class _Refusal:
    reason: str
    outcome: str


async def _refuse(
    ctx: EngineContext, reason: str, outcome: str, batch: Batch | None = None, kind: str = ""
) -> NotifyAnswer:
    """`fail`, logged; kept in the journal of the batch it named, when that batch is ours."""
    reason = bounded(reason)  # anyone can post a notify: its fields are quoted into `reason`
    log.warning("alipay notify refused: %s", reason)
    if batch is not None:
        await ctx.store.record_batch_event(batch.id, f"{kind}_refused", {"verified": False, "reason": reason},
                                           ctx.clock())
    return NotifyAnswer(FAIL, reason, outcome)


def check_results(batch: Batch, items: Sequence[ResultItem]) -> list[DetailResult] | str:
    """The notify's results as DetailResults, or why they are not about the batch we sent.

    A result for a trade of the batch is kept even when it disagrees with what we sent or recorded (another
    amount, another verdict): the store flags its refund for review instead of applying it (results.py)."""
    sent = {d.trade_no for d in batch.details}
    results: list[DetailResult] = []
    seen: set[str] = set()
    for item in items:
        trade = item.trade
        if trade.trade_no in seen:
            return f"trade {trade.trade_no} has two results, but batch {batch.batch_no} holds it once"
        seen.add(trade.trade_no)
        if trade.trade_no not in sent:
            return f"trade {trade.trade_no} is not in batch {batch.batch_no}"
        results.append(DetailResult(trade.trade_no, trade.amount, trade.code, encode_result_details([item])))
    return results


@dataclass(frozen=True)
class Reading:
    """What a genuine notify says: its id, the results to record, and a line for the log."""

    notify_id: str
    results: list[DetailResult]
    summary: str


def _read_refund(batch: Batch, params: Mapping[str, str]) -> Reading | str:
    notify = parse_refund_notify(params)
    results = check_results(batch, notify.results)
    if isinstance(results, str):
        return results
    return Reading(notify.notify_id, results, f"{len(results)} results")


def _read_dback(batch: Batch, params: Mapping[str, str]) -> Reading | str:
    notify = parse_dback_notify(params)
    if notify.trade_no not in {d.trade_no for d in batch.details}:
        return f"trade {notify.trade_no} is not in batch {batch.batch_no}"
    return Reading(notify.notify_id, [], f"trade {notify.trade_no} dback status {notify.status}")


@dataclass(frozen=True)
class NotifyKind:
    name: str  # recorded with the notify_id, so a redelivery is recognised
    batch_field: str  # the parameter holding our batch_no
    read: Callable[[Batch, Mapping[str, str]], Reading | str]


REFUND = NotifyKind(REFUND_KIND, "batch_no", _read_refund)
DBACK = NotifyKind(DBACK_KIND, "refund_batch_no", _read_dback)  # 充退: money back to the card, or left in balance


def _field(body: bytes, name: str) -> str:
    """One field of a form body (its last occurrence, as a decoded form's dict holds), found without decoding the
    rest: a forged notify naming no batch of ours costs a search, not a decode of its whole body."""
    key = name.encode() + b"="
    at = body.rfind(b"&" + key)
    start = at + 1 + len(key) if at >= 0 else len(key) if body.startswith(key) else -1
    if start < 0:
        return ""
    end = body.find(b"&", start)
    return decode_form(b"v=" + body[start : end if end >= 0 else len(body)], "latin-1")["v"]


def _decode_and_verify(channel: MapiChannel, body: bytes) -> tuple[dict[str, str], bool]:
    params = channel.decode_notify(body)
    return params, channel.signature_ok(params)


async def _authentic(
    ctx: EngineContext, batch: Batch, body: bytes, kind: NotifyKind
) -> tuple[dict[str, str], bool] | _Refusal:
    """The decoded parameters of a genuine notify about `batch` and whether it was recorded before, or why it is
    not one."""
    batch_no = batch.batch_no
    channel = ctx.channels.get(batch.account)
    if channel is None:
        return _Refusal(f"batch {batch_no}: account {batch.account!r} is not configured", UNKNOWN_ACCOUNT)
    if body.count(b"&") >= MAX_NOTIFY_FIELDS or body.count(b"%") > MAX_NOTIFY_ESCAPES:
        return _Refusal(f"batch {batch_no}: more than {MAX_NOTIFY_FIELDS} fields or {MAX_NOTIFY_ESCAPES} %-escapes",
                        MALFORMED)
    if len(body) <= INLINE_DECODE_BYTES:
        params, genuine = _decode_and_verify(channel, body)
    else:
        params, genuine = await asyncio.to_thread(_decode_and_verify, channel, body)
    if not genuine:
        return _Refusal(f"batch {batch_no}: bad signature", FORGED)
    if params.get(kind.batch_field) != batch_no:  # what was signed names another batch than the one looked up
        return _Refusal(f"batch {batch_no}: the decoded notify names batch {quote(params.get(kind.batch_field, ''))}",
                        MISMATCH)
    try:  # checked before it travels to notify_verify: a signed notify may still carry 8 KB of anything there
        notify_id = read_notify_id(params)
    except AlipayFormatError as exc:
        return _Refusal(f"batch {batch_no}: {exc}", MALFORMED)
    if await ctx.store.notify_seen(batch_no, notify_id, kind.name):
        return params, True  # a redelivery of what is already recorded: acknowledge without asking again
    if not await channel.notify_id_ok(notify_id):
        return _Refusal(f"batch {batch_no}: notify_verify did not confirm notify_id {quote(notify_id)}", UNVERIFIED)
    return params, False


async def handle_notify(ctx: EngineContext, body: bytes, kind: NotifyKind) -> NotifyAnswer:
    """Verify, check against the batch, record idempotently; `success` only after the commit."""
    batch_no = _field(body, kind.batch_field)
    batch = await ctx.store.find_batch(batch_no) if batch_no else None
    if batch is None:
        return await _refuse(ctx, f"unknown batch_no {quote(batch_no)}", UNKNOWN_BATCH)
    found = await _authentic(ctx, batch, body, kind)
    if isinstance(found, _Refusal):
        return await _refuse(ctx, found.reason, found.outcome, batch, kind.name)
    params, seen = found
    try:
        reading = kind.read(batch, params)
    except AlipayFormatError as exc:
        return await _refuse(ctx, f"batch {batch.batch_no}: malformed {kind.name} notify: {exc}", MALFORMED, batch,
                             kind.name)
    if isinstance(reading, str):
        return await _refuse(ctx, f"{kind.name} notify: {reading}", MISMATCH, batch, kind.name)
    crash_point(AFTER_NOTIFY_VERIFIED)
    # A contradicting result is answered `success` too, once its review flag is committed with the rest: Alipay
    # resends the same notify (same notify_id, same content) up to 8 times over 25 h, which would only repeat the
    # anomaly; the query re-reads Alipay's view whenever needed, and `fail` would look like an outage to Alipay.
    recorded = await record_verdicts(ctx, batch, reading.results, notify_id=reading.notify_id, kind=kind.name)
    log.info("alipay %s notify %s for batch %s: %s, %d changes", kind.name, reading.notify_id, batch.batch_no,
             reading.summary, len(recorded.changes))
    outcome = ANOMALY if recorded.anomalies else DUPLICATE if seen else ACCEPTED
    return NotifyAnswer(SUCCESS, "recorded", outcome)
