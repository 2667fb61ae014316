"""The one store interface. The engine and the web layer talk to this; only the backends touch SQL.

Every method that changes a refund's state returns the `StateChange`s it committed, so the caller can
broadcast them (`refund_state_changed`) after the commit, never before.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..channels.base import ReferenceMaker
from ..models import Batch, BatchState, DetailResult, Refund, RefundRequest, RefundState, ReportState

EXCEEDS_PAID_AMOUNT = "EXCEEDS_PAID_AMOUNT"  # local rejection code: the trade's refunds would pass its paid amount


class StoreUnavailable(Exception):
    """The database could not take the call for a reason outside it: a full disk, a connection lost mid-way.

    The write did not commit (or, for a connection lost during its COMMIT, it cannot be known whether it did), so
    the caller must not report success: a webhook is answered 503, a notify `fail`, an engine step is retried.
    Every write is idempotent, so doing it again later is safe."""


@dataclass(frozen=True)
class AcceptResult:
    refund: Refund  # as stored: for a conflict, the first version, unchanged
    created: bool  # False: the same (platform, shop, platform refund id) was already stored; nothing changed
    conflict: tuple[str, ...] = ()  # when not created: the content fields in which the request differs from it


@dataclass(frozen=True)
class Anomaly:
    """A result from Alipay that contradicts what is recorded for a refund: it changed nothing but the refund's
    `review` flag."""

    refund_id: int
    trade_no: str
    reason: str


@dataclass(frozen=True)
class StateChange:
    refund: Refund  # as it is after the change
    old_state: RefundState | None  # None: newly created


class StateChanges(Sequence[StateChange]):
    """The changes of a batch-wide write, each refund's model made from its row on first use.

    A thousand models are about 20 ms of CPU, which an engine no plugin listens to never needs: it asks only how
    many there were and whether any is final. Made inside the transaction, they held SQLite's writer, which intake
    waits for (`set_batch_state` of 1,000 refunds: 41 ms then, 16 ms now, by `python bench/store_steps.py`).
    `load()` makes them a chunk per turn of the event loop, for a caller that reads them all."""

    CHUNK = 200  # models made per turn of the event loop by load()

    def __init__(self, rows: Sequence[Any], final: bool, make: Callable[[Any], StateChange]) -> None:
        self._rows = rows
        self._make = make
        self._made: list[StateChange] = []
        self.final = final  # whether any refund reached a final state

    async def load(self) -> None:
        while len(self._made) < len(self._rows):
            self._made_up_to(len(self._made) + self.CHUNK)
            await asyncio.sleep(0)

    def _made_up_to(self, end: int) -> Sequence[StateChange]:
        self._made += [self._make(row) for row in self._rows[len(self._made) : end]]
        return self._made

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Any) -> Any:
        return self._made_up_to(len(self._rows))[index]

    def __iter__(self) -> Iterator[StateChange]:
        return iter(self._made_up_to(len(self._rows)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment] - compared by value, like the list it stands for


def any_final(changes: Sequence[StateChange]) -> bool:
    """Whether a change reached a final state, without making StateChanges' models."""
    if isinstance(changes, StateChanges):
        return changes.final
    return any(change.refund.state.is_final for change in changes)


@dataclass(frozen=True)
class RecordedResults:
    changes: Sequence[StateChange]
    anomalies: list[Anomaly]


@dataclass(frozen=True)
class PendingWork:
    """Refunds of one Alipay account waiting for a batch."""

    account: str
    count: int
    oldest_created_at: float


@dataclass(frozen=True)
class Cause:
    """Why the store is asked for a change, as the journal keeps it. `kind` names the event (`submit`, `query`,
    `operator`...), `summary` is the line each refund it changes shows in its timeline, `detail` what the batch's
    journal keeps beside it (the request sent, without its signature; the answer). Opaque to the store, which
    bounds its size and stores it; it must hold no secret."""

    kind: str
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalEntry:
    """One event of a refund's or a batch's journal."""

    at: datetime
    kind: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class RefundFilter:
    """What an operator looks for among refunds; every field narrows (None: any). `search` is one value matched
    against the order id, the platform's refund id, the trade_no and the batch's reference."""

    state: RefundState | None = None
    report_state: ReportState | None = None
    platform: str | None = None
    shop: str | None = None
    account: str | None = None
    created_from: float | None = None  # epoch seconds, inclusive
    created_to: float | None = None  # exclusive
    search: str | None = None
    review: bool | None = None
    batch_id: int | None = None


@dataclass(frozen=True)
class RefundPage:
    """One keyset page of refunds, newest first. `older`: the `before_id` of the next page, None when nothing older
    can match. A page with filters that no index serves reads a bounded range of ids, so it may hold fewer than
    asked for (even none) and still have an `older` page."""

    refunds: list[Refund]
    older: int | None


@dataclass(frozen=True)
class BatchOverview:
    """A batch as an operator lists it: its refunds counted by state rather than listed."""

    batch: Batch  # without details
    refunds: Mapping[str, int]  # refunds by state


@dataclass(frozen=True)
class Summary:
    """The refunds created in [since, until): the operator's overview of a day or a month."""

    since: datetime
    until: datetime
    by_state: Mapping[str, int]
    success_rate: float | None  # succeeded / (succeeded + failed + rejected); None before any is final
    refunded_by_account: Mapping[str, Decimal]  # succeeded amounts
    reported_seconds_p50: float | None  # webhook to the platform having the result, of those reported
    reported_seconds_p95: float | None
    series: Sequence[tuple[datetime, Mapping[str, int]]]  # per bucket: refunds created, by state now


@dataclass(frozen=True)
class ApprovalQueue:
    """The batches waiting for an operator to approve them at Alipay (`mapi_pwd` accounts): how many, their total
    amount, when the oldest was formed, and the oldest of them with their details."""

    count: int
    total: Decimal
    oldest_created_at: datetime | None
    batches: list[Batch]


class RefundStore(abc.ABC):
    """Durable, idempotent state of refunds and batches. Times are epoch seconds (UTC)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def namespace(self) -> str:
        """This database's install id, part of every batch reference so two databases never reuse one."""

    # -- intake ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def accept(self, requests: Sequence[RefundRequest], now: float) -> list[AcceptResult]:
        """Store requests durably (committed before return) and idempotently on their key.

        A request that would take its trade's refunded total past `paid_amount` is stored REJECTED with
        EXCEEDS_PAID_AMOUNT and queued for reporting, so the platform learns why. A request whose key is stored
        with other content (`RefundRequest.conflicts_with`) changes nothing and comes back with `conflict` set.
        """

    # -- batching and submission ----------------------------------------------------------------------
    @abc.abstractmethod
    async def pending_work(self) -> list[PendingWork]: ...

    @abc.abstractmethod
    async def create_batch(
        self, account: str, max_details: int, references: ReferenceMaker, now: float, *,
        awaiting_approval: bool = False,
    ) -> Batch | None:
        """Put up to `max_details` received refunds of `account`, one per trade, in a new PENDING batch (or one
        AWAITING_APPROVAL, for an operator to approve at Alipay), its reference made by `references` (the
        account's channel's) from the namespace and the batch's id."""

    # -- approval by an operator (password batches) ------------------------------------------------------
    @abc.abstractmethod
    async def approval_queue(self, limit: int = 100, *, accounts: Sequence[str] | None = None) -> ApprovalQueue:
        """What waits for approval (of `accounts` only, when given): counted and summed whole, the `limit` oldest
        batches with their details."""

    @abc.abstractmethod
    async def issue_approval(self, batch_id: int, references: ReferenceMaker, now: float, *,
                             next_query_at: float) -> Batch | None:
        """An approval is being made for an AWAITING_APPROVAL batch, its reference as `references` names it now.
        Its reference changes to that one (same batch, so the same serial for MAPI) when the two differ and no
        approval left for the old one (Alipay cannot know it); the approval is recorded, and the batch queried at
        `next_query_at` (or sooner, as already due) in case the operator approves and the notify is lost. A
        reference an approval left for stays (only a query can say whether it was used): nothing is recorded and
        the query is due now. Returns the batch as it now is, or None when it is not awaiting approval."""

    @abc.abstractmethod
    async def release_for_submit(self, batch_id: int, references: ReferenceMaker, now: float) -> Batch | None:
        """An AWAITING_APPROVAL batch whose account now sends without approval: PENDING, to be sent under its
        reference (changed to the one `references` makes, as `issue_approval` would). None, and nothing changed,
        when it is not awaiting approval or an approval left for an older reference (its query decides first)."""

    @abc.abstractmethod
    async def approval_expired(self, batch_id: int, now: float, *, cause: Cause) -> None:
        """The query proved the batch's approval unused and no longer usable (of a day past): the batch waits as
        if no approval had left (its reference may change); no query is due."""

    @abc.abstractmethod
    async def claim_batch_to_submit(self, now: float, lease_seconds: float) -> Batch | None:
        """A PENDING batch, or a SENDING one whose lease expired (a crash mid-submit): now SENDING, leased."""

    @abc.abstractmethod
    async def set_batch_state(
        self,
        batch_id: int,
        state: BatchState,
        now: float,
        *,
        code: str | None = None,
        next_query_at: float | None = None,
        retry_at: float | None = None,
        cause: Cause | None = None,
    ) -> Sequence[StateChange]:
        """Move a batch and its unresolved refunds along: SUBMITTED/UNKNOWN mark them so, REJECTED fails them
        with `code` (and queues the reports), PENDING puts it back to be resent (same reference) at `retry_at`,
        ABANDONED returns its refunds to RECEIVED for a new batch (only for a batch Alipay provably never
        accepted), REVIEW leaves the refunds as they are for an operator. The batch's journal keeps `cause` (its
        detail: the request sent, the answer), each refund moved its summary."""

    @abc.abstractmethod
    async def remove_from_batch(
        self, batch_id: int, refund_ids: Sequence[int], code: str, now: float
    ) -> Sequence[StateChange]:
        """Take refunds the channel would not send out of a SENDING batch whose send did not happen: each leaves
        the batch REJECTED with `code` (its report queued). The batch goes back to PENDING, to be sent at once
        with the others under the same reference (this claim counts as no send), or is REJECTED with `code` when
        none is left. Returns the changes; none (and the batch untouched) when the batch is not SENDING or
        none of `refund_ids` is an unresolved refund of it."""

    @abc.abstractmethod
    async def split_batch(
        self, batch_id: int, references: ReferenceMaker, now: float, *, code: str
    ) -> list[Batch]:
        """Split a SENDING batch Alipay refused whole, for a reason one detail may cause without saying which,
        into two new PENDING batches (new references made by `references`), its unresolved refunds halved in id
        order; the batch becomes ABANDONED with `code`. Only for a batch Alipay provably never accepted. Returns the
        halves; none when the batch is not SENDING or holds fewer than two unresolved refunds."""

    @abc.abstractmethod
    async def record_results(
        self, batch_id: int, results: Sequence[DetailResult], now: float, *, message_id: str | None, kind: str
    ) -> RecordedResults:
        """Record Alipay's verdicts (already checked against the batch) in one transaction; idempotent. With a
        `message_id` (a notify's), `notify_seen` then knows the notify.

        A verdict that contradicts its refund's record (`DetailResult.contradiction`) is not applied: the refund
        is flagged for review instead (its first reason kept) and the contradiction returned as an Anomaly.
        The journals keep the results (with each `DetailResult.line`), the changes and the flags."""

    @abc.abstractmethod
    async def record_batch_event(self, batch_id: int, kind: str, detail: Mapping[str, Any], now: float) -> None:
        """Keep in the batch's journal what changed nothing (a notify refused, and why)."""

    @abc.abstractmethod
    async def notify_seen(self, reference: str, message_id: str, kind: str) -> bool:
        """Whether the notify `message_id` of `kind` about the batch `reference` was recorded."""

    # -- reconciliation -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim_batches_to_query(self, now: float, limit: int, lease_seconds: float) -> list[Batch]:
        """SUBMITTED or UNKNOWN batches (or AWAITING_APPROVAL ones whose link was opened) whose next query is due,
        leased so one instance queries each."""

    @abc.abstractmethod
    async def schedule_query(self, batch_id: int, next_query_at: float, now: float, *, cause: Cause | None = None
                             ) -> None:
        """Count one more query of the batch and set when the next is due; the journal keeps `cause`."""

    @abc.abstractmethod
    async def requery_batch(self, batch_id: int, now: float) -> Batch | None:
        """An operator asks for the batch to be queried now: a SUBMITTED or UNKNOWN batch's next query is due at
        once; a batch in REVIEW is queried again too (UNKNOWN when one of its refunds is, else SUBMITTED; once
        its schedule is spent it returns to REVIEW after that one query). None, and nothing changed, for a batch
        in any other state or none at all."""

    # -- reporting (the outbox) -----------------------------------------------------------------------
    @abc.abstractmethod
    async def claim_reports(self, now: float, limit: int, lease_seconds: float) -> list[Refund]: ...

    @abc.abstractmethod
    async def report_delivered(self, refund_ids: Sequence[int], now: float) -> None:
        """The platforms have these results (since `now`), recorded in one transaction. (`updated_at` stays the
        time each refund's state last changed.)"""

    @abc.abstractmethod
    async def report_failed(self, refund_id: int, error: str, *, next_at: float | None, now: float) -> None:
        """A failed delivery: retried at `next_at`, or a dead letter when `next_at` is None."""

    @abc.abstractmethod
    async def retry_dead_letters(self, now: float, refund_ids: Sequence[int] | None = None) -> int:
        """Put dead letters (all, or those given) back in the outbox; returns how many."""

    # -- review ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def clear_review(self, refund_id: int, now: float) -> Refund | None:
        """An operator has looked: the refund's review flag is cleared (nothing else changes). The refund as it
        now is, or None when there is no such refund."""

    # -- plugins' own data ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def plugin_data_get(self, plugin: str, key: str) -> str | None: ...

    @abc.abstractmethod
    async def plugin_data_put(self, plugin: str, items: Mapping[str, str], now: float) -> None:
        """Insert or replace `items` under the plugin's name, in one transaction."""

    @abc.abstractmethod
    async def plugin_data_items(self, plugin: str, prefix: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def plugin_data_delete(self, plugin: str, keys: Sequence[str]) -> None: ...

    # -- reading --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_refund(self, refund_id: int) -> Refund | None: ...

    @abc.abstractmethod
    async def find_refund(self, platform: str, shop: str, platform_refund_id: str) -> Refund | None: ...

    @abc.abstractmethod
    async def list_refunds(
        self,
        *,
        state: RefundState | None = None,
        report_state: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        batch_id: int | None = None,
        review: bool | None = None,
    ) -> list[Refund]:
        """Newest first; `review=True`: only those flagged for review, `False`: only those not flagged."""

    @abc.abstractmethod
    async def find_refunds(
        self, where: RefundFilter, *, limit: int = 100, before_id: int | None = None, after_id: int | None = None
    ) -> RefundPage:
        """A keyset page, newest first: ids below `before_id`, or the `limit` ids just above `after_id` (the page
        before, still newest first)."""

    @abc.abstractmethod
    async def refund_journal(self, refund_id: int) -> list[JournalEntry]:
        """The refund's events in order, the first its arrival (`accepted`, at its created_at); empty when there
        is no such refund."""

    @abc.abstractmethod
    async def batch_journal(self, batch_id: int, limit: int = 1000) -> list[JournalEntry]: ...

    @abc.abstractmethod
    async def batch_overviews(
        self, *, state: BatchState | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[BatchOverview]:
        """Newest first; each batch exactly as the row that matched `state` was read."""

    @abc.abstractmethod
    async def summary(self, since: float, until: float, bucket_seconds: float) -> Summary: ...

    @abc.abstractmethod
    async def get_batch(self, batch_id: int) -> Batch | None: ...

    @abc.abstractmethod
    async def find_batch(self, reference: str) -> Batch | None: ...

    @abc.abstractmethod
    async def list_batches(self, *, limit: int = 100, state: BatchState | None = None, before_id: int | None = None,
                           max_details: int | None = None) -> list[Batch]:
        """Newest first (ids below `before_id` when given); with `max_details`, stops after the batch that brings
        the details returned to that many, so one page stays small whatever the batches' sizes."""

    @abc.abstractmethod
    async def oldest_pending_report(self) -> float | None:
        """When the oldest result still waiting in the outbox became final (epoch seconds), None when none waits:
        how far behind the platforms are told."""

    @abc.abstractmethod
    async def schema_problem(self) -> str | None:
        """Why this store cannot serve now (a migration not applied), or None; raises when it cannot be reached."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, dict[str, int]]:
        """Refunds by state, by report state, batches by state, and refunds flagged for review (`review`:
        `{"flagged": n}`): the operator's overview."""
