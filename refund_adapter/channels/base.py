"""The seam between the engine and a way of reaching Alipay: the `RefundChannel` protocol and what it answers.

A channel submits a group of refunds (a `models.Batch`), reads a notify about one, queries one, and names new
groups (`references`: the group's idempotency key). What it answers is channel-neutral: a `Verdict` for a submit,
`DetailResult`s for what Alipay did, a `NotifyRefused` for a notify not to be believed. The engine and the store
decide only on these; every protocol field (MAPI's batch numbers and detail lines, OpenAPI's request numbers)
stays inside the channel's package. A group's reference is opaque outside its channel: the store keeps it in a
column the channel owns, and finds a batch by it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..models import Batch, DetailResult

ReferenceMaker = Callable[[str, int], str]
"""The reference of a new group from this database's namespace and the group's own id: unique per database, and
the same however often it is made, so a retry never mints a second one."""

# Why a notify is not believed, for the notifies counter (refund_adapter/metrics.py).
FORGED, UNVERIFIED, MALFORMED, MISMATCH = "forged", "unverified", "malformed", "mismatch"


class Verdict(enum.Enum):
    """What the answer to a submit proves, all the engine decides on."""

    ACCEPTED = "accepted"  # the channel has the group (now or from an earlier send): notify or query tell the rest
    UNKNOWN = "unknown"  # no usable answer: resolved by notify or query, never by a new reference
    RETRY = "retry"  # refused for a passing reason: nothing was taken, the same group goes again later
    REJECTED = "rejected"  # refused for good: nothing was taken
    DETAIL_REFUSED = "detail_refused"  # refused whole for a detail the answer does not name: nothing was taken
    EXPIRED = "expired"  # refused because its reference is no longer valid (formed on an earlier day)


@dataclass(frozen=True)
class Submitted:
    """A submit's answer: the verdict, and what the channel said, for the batch's journal and the metrics."""

    verdict: Verdict
    answer: str  # the channel's own name for the answer ("accepted", "duplicate"...), a metric label
    code: str | None = None  # Alipay's code, when it gave one
    detail: str = ""  # a human explanation
    # What was sent, for the batch's journal: the parameters before signing (so never a signature, nor a key).
    request: Mapping[str, str] = field(default_factory=dict, compare=False)
    # Verdicts the answer itself proves, for a channel whose calls settle refunds at once (OpenAPI); recorded with
    # the batch's new state. MAPI's come later, by notify or query.
    results: tuple[DetailResult, ...] = ()


@dataclass(frozen=True)
class QueryAnswer:
    """What the channel's query says about one group."""

    results: tuple[DetailResult, ...] = ()  # verdicts on the group's details (each a trade of the group)
    unresolved: str | None = None  # why there is nothing to record (unanswered, nothing found...), for the journal
    resendable: bool = False  # with `unresolved`: the group never arrived and may be sent again as it is, now
    lapsed: bool = False  # with `unresolved`: the group never arrived and its reference can no longer be used
    mismatch: str | None = None  # the answer is not about the group we sent (why): an operator must look


@dataclass(frozen=True)
class NotifyRefused:
    """A notify not to be believed: why (it may quote what the sender wrote: bounded before logging) and the
    counter's outcome (FORGED, UNVERIFIED, MALFORMED or MISMATCH)."""

    reason: str
    outcome: str


@dataclass(frozen=True)
class OpenedNotify:
    """A notify whose signature holds and that names the group it was looked up by; not yet confirmed."""

    message_id: str  # the channel's id of this notify: the same on every redelivery
    fields: Mapping[str, str]


@dataclass(frozen=True)
class NotifyReading:
    """What a genuine notify says: its id, the results to record, and a line for the log."""

    message_id: str
    results: list[DetailResult]
    summary: str


class NotifyKind(Protocol):
    """One kind of notify a channel receives (its endpoint passes it to the engine)."""

    @property
    def name(self) -> str:
        """Recorded with each notify's id, so a redelivery is recognised."""

    def reference_in(self, body: bytes) -> str:
        """The reference of the group the body names ("" if none), found without decoding the rest of it: a forged
        notify naming no group of ours costs a search."""


class DetailsRefused(Exception):
    """Refunds of a batch the channel cannot send as they are; nothing was sent. `reasons`: refund id -> why."""

    def __init__(self, reasons: Mapping[int, str]) -> None:
        super().__init__(f"{len(reasons)} details refused: " + "; ".join(reasons.values()))
        self.reasons = dict(reasons)


class RefundChannel(Protocol):
    """One Alipay account reached one way. Every method that talks to Alipay turns what it cannot prove into
    UNKNOWN (submit) or `unresolved` (query), never into a failure."""

    def references(self, now: datetime) -> ReferenceMaker:
        """How a group formed at `now` is named: its idempotency key at Alipay."""

    async def submit(self, batch: Batch, now: datetime) -> Submitted:
        """Send the group. DetailsRefused (nothing sent) when some of its details break the protocol, so the
        engine can take them out and send the rest; any other error escapes as it is."""

    async def query(self, batch: Batch, now: datetime) -> QueryAnswer:
        """Ask Alipay what became of the group."""

    def open_notify(self, kind: NotifyKind, batch: Batch, body: bytes) -> OpenedNotify | NotifyRefused:
        """Decode a notify about `batch` and check its signature (CPU only: the engine may run it on a thread)."""

    async def confirm_notify(self, notify: OpenedNotify) -> bool:
        """Whether Alipay confirms it sent this notify."""

    def read_notify(self, kind: NotifyKind, batch: Batch, notify: OpenedNotify) -> NotifyReading | NotifyRefused:
        """The results a confirmed notify gives, checked against the group."""


@dataclass(frozen=True)
class Approval:
    """A group's request for an operator to confirm at Alipay: a link to open (`url`), or, too long for one, a form
    of `fields` to send to `action` in `charset`. Alipay refuses it from `expires_at` on."""

    url: str
    action: str
    fields: Mapping[str, str]  # signed
    charset: str
    expires_at: datetime


@runtime_checkable
class ApprovalChannel(RefundChannel, Protocol):
    """A channel whose groups an operator confirms at Alipay (the password batch refund) instead of the engine
    submitting them: a group waits until the operator, given its `approval`, confirms it there. Notifies and
    queries are read as any channel's."""

    def approval(self, batch: Batch, now: datetime) -> Approval | None:
        """The signed request for the operator, made at `now`; None when the group's reference cannot be used
        at `now` (formed on an earlier day: the engine gives it the day's reference once Alipay cannot have it)."""


def check_results(batch: Batch, results: Sequence[DetailResult]) -> list[DetailResult] | str:
    """The results about `batch`, or why they are not about the group we sent (a trade twice, or not ours).

    A result for a trade of the batch is kept even when it disagrees with what we sent or recorded (another
    amount, another verdict): the store flags its refund for review instead of applying it (engine/results.py)."""
    sent = {d.trade_no for d in batch.details}
    seen: set[str] = set()
    for result in results:
        if result.trade_no in seen:
            return f"trade {result.trade_no} has two results, but batch {batch.reference} holds it once"
        seen.add(result.trade_no)
        if result.trade_no not in sent:
            return f"trade {result.trade_no} is not in batch {batch.reference}"
    return list(results)
