"""The core's vocabulary: refund requests, refunds, batches, results. Pure, frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class RefundState(StrEnum):
    """Where a refund is in its life; the terminal money states are SUCCEEDED, FAILED and REJECTED."""

    RECEIVED = "received"  # on disk, waiting for a batch
    BATCHED = "batched"  # in a batch that is on disk, not yet acknowledged by Alipay
    SUBMITTED = "submitted"  # Alipay accepted the batch; waiting for the notify
    UNKNOWN = "unknown"  # we could not see the submit's outcome; only the notify or the query resolves it
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Alipay refused it (code says why)
    REJECTED = "rejected"  # refused locally before reaching Alipay (code says why)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({RefundState.SUCCEEDED, RefundState.FAILED, RefundState.REJECTED})


class Unpayable(StrEnum):
    """Why a refund the platform identified cannot be paid through Alipay: the code it is stored under, once,
    REJECTED, for the operator to see and the platform to be told. The platform's delivery is acknowledged all
    the same: refusing it would only have it sent again (Shopify for two days, then it drops the subscription).
    (A refund over its trade's paid amount is rejected the same way, as EXCEEDS_PAID_AMOUNT.)"""

    CURRENCY = "UNSUPPORTED_CURRENCY"  # Alipay's batch refund pays back CNY only
    TRADE_NO = "NO_ALIPAY_TRADE_NO"  # none where the shop's settings say, or not one Alipay's detail can carry
    PAYMENT = "UNKNOWN_PAYMENT"  # paid some other way: no Alipay trade is recorded for the order's payment
    PRECISION = "AMOUNT_PRECISION"  # more than 2 decimals; stored rounded up to the fen, never paid


class ReportState(StrEnum):
    """Whether the platform has been told a refund's final result."""

    NONE = "none"  # not final yet
    PENDING = "pending"  # in the outbox, being delivered with backoff
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up; visible to the operator, who can retry it


class BatchState(StrEnum):
    PENDING = "pending"  # on disk, never sent
    # On disk, waiting for an operator to confirm it at Alipay with the payment password (a `mapi_pwd` account):
    # its refunds stay BATCHED; the notify, or the query of a link that was opened, settles it.
    AWAITING_APPROVAL = "awaiting_approval"
    SENDING = "sending"  # a submit is (or was, before a crash) in flight: resend the same batch_no
    SUBMITTED = "submitted"  # acknowledged (T, P or DUPLICATE_BATCH_NO on a resend)
    UNKNOWN = "unknown"  # outcome of the submit not seen
    REJECTED = "rejected"  # refused synchronously with a final code
    # Alipay provably never accepted it and its refunds moved on: refused for its date (sent after midnight),
    # they are re-batched; refused for a detail it does not name, they are split into two new batches.
    ABANDONED = "abandoned"
    COMPLETED = "completed"  # every detail has a result
    REVIEW = "review"  # the Alipay query gave up: an operator must look


@dataclass(frozen=True)
class RefundRequest:
    """What a platform plugin hands the core: one refund to pay back through Alipay.

    `context` is the plugin's own JSON-serialisable data, returned to it when the result is reported
    (for example the platform's order gid or refund session id).
    """

    platform: str
    shop: str
    platform_refund_id: str
    order_id: str
    trade_no: str
    amount: Decimal
    currency: str
    reason: str
    alipay_account: str
    paid_amount: Decimal | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    # Set by the plugin (an `Unpayable` code it alone can tell) or by the core's intake checks: the refund is
    # stored REJECTED with this code instead of being paid. Not stored itself: the refund's `code` keeps it.
    rejection: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: a replay of the same platform refund never creates a second one."""
        return (self.platform, self.shop, self.platform_refund_id)

    def conflicts_with(self, stored: RefundRequest) -> tuple[str, ...]:
        """The CONTENT_FIELDS in which this request differs from the one stored under the same key (empty: an
        identical redelivery)."""
        return tuple(name for name in CONTENT_FIELDS if getattr(self, name) != getattr(stored, name))


# What a refund *is*, beyond its key: the fields that decide what money moves where and what the platform is
# told about which order. A redelivery of a known key that differs in any of them is a conflict (refused with a
# 409, logged, counted; the stored refund stays as it is), since paying either version could be wrong. Not
# content: `reason` (free text a merchant may edit, cleaned before storing; it moves no money and Alipay only
# shows it), `paid_amount` (describes the trade, not the refund; some platforms send what is still refundable,
# which shrinks as refunds land; it was checked at first delivery) and `context` (the plugin's bookkeeping, such
# as a per-delivery webhook id).
CONTENT_FIELDS = ("amount", "currency", "trade_no", "alipay_account", "order_id")


@dataclass(frozen=True)
class Refund:
    """A stored refund and where it is."""

    id: int
    request: RefundRequest
    state: RefundState
    code: str | None
    batch_id: int | None
    batch_reference: str | None  # its batch's reference (Batch.reference)
    report_state: ReportState
    created_at: datetime
    updated_at: datetime
    report_attempts: int = 0
    report_error: str | None = None
    review: str | None = None  # why an operator must look at it (a contradicting result from Alipay); None: fine

    @property
    def batch_no(self) -> str | None:
        """The batch's reference under MAPI's name, as the dashboard, the admin API and the CLI show it."""
        return self.batch_reference

    def outcome(self) -> RefundOutcome:
        """What its platform is told once it is final."""
        succeeded = self.state is RefundState.SUCCEEDED
        return RefundOutcome(self.id, self.request, succeeded, self.code, batch_no=self.batch_reference)


@dataclass(frozen=True)
class BatchDetail:
    """One line of a batch: one refund of one trade."""

    refund_id: int
    trade_no: str
    amount: Decimal
    reason: str
    # The refund's idempotency key (platform, shop, platform refund id), from which a channel makes its own
    # request key that no retry, re-batching or restart changes (OpenAPI's out_request_no).
    key: tuple[str, str, str] = ("", "", "")
    # Its refund has a final result: a channel that settles refunds one by one (OpenAPI) never sends it again.
    settled: bool = False


@dataclass(frozen=True)
class Batch:
    """A group of refunds of one account, sent to Alipay together by the account's channel."""

    id: int
    account: str
    reference: str  # the channel's idempotency key for the group (MAPI: the batch_no); opaque outside the channel
    state: BatchState
    details: tuple[BatchDetail, ...]
    created_at: datetime
    submit_attempts: int = 0
    query_attempts: int = 0
    code: str | None = None
    sent_at: datetime | None = None  # first submit
    acknowledged_at: datetime | None = None  # first answer that proved Alipay took it
    notified_at: datetime | None = None  # first notify recorded
    approval_link_at: datetime | None = None  # the last approval link made for its current batch_no (pwd)

    @property
    def batch_no(self) -> str:
        """The reference under MAPI's name, as the dashboard, the admin API and the CLI show it."""
        return self.reference


@dataclass(frozen=True)
class DetailResult:
    """Alipay's verdict on one detail, from a notify or the refund query."""

    trade_no: str
    amount: Decimal
    code: str
    line: str = field(default="", compare=False)  # the result as the channel received it, for the journal

    @property
    def succeeded(self) -> bool:
        return self.code == "SUCCESS"

    def contradiction(self, state: RefundState, code: str | None, amount: Decimal) -> str | None:
        """Why this verdict contradicts what is recorded for its refund (None: it does not). An amount other
        than the one sent is never believed; a settled refund keeps its verdict (Alipay settles a detail
        once, so a second, different code means one of the two is wrong, and money may have moved either way)."""
        if self.amount != amount:
            return f"{self.code} for {self.amount}, but {amount} was sent"
        if state in (RefundState.SUCCEEDED, RefundState.FAILED) and self.code != code:
            return f"{self.code}, but {state.value} {code} is recorded"
        return None


@dataclass(frozen=True)
class RefundOutcome:
    """What a platform is told once a refund is final."""

    refund_id: int
    request: RefundRequest
    succeeded: bool
    code: str | None
    batch_no: str | None  # the refund's batch (Batch.reference), under the name plugins have always read

    @property
    def status(self) -> str:
        return "succeeded" if self.succeeded else "failed"


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again later (timeouts, 5xx, throttling)
    DEAD = "dead"  # will never succeed by retrying (bad credentials, refund gone): straight to the dead letters


@dataclass(frozen=True)
class DeliveryResult:
    status: DeliveryStatus
    reason: str = ""
    retry_after_seconds: float | None = None

    @classmethod
    def delivered(cls) -> DeliveryResult:
        return cls(DeliveryStatus.DELIVERED)

    @classmethod
    def retry(cls, reason: str, retry_after_seconds: float | None = None) -> DeliveryResult:
        return cls(DeliveryStatus.RETRY, reason, retry_after_seconds)

    @classmethod
    def dead(cls, reason: str) -> DeliveryResult:
        return cls(DeliveryStatus.DEAD, reason)
