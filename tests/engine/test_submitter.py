"""What a submit answer means for a batch: nothing unproven fails a refund, nothing accepted is re-batched.

Each MAPI answer goes through the channel's verdict (channels/mapi/channel.py) and then the engine's decision, so
these cases pin the two together."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest

from refund_adapter.channels.mapi.channel import verdict
from refund_adapter.channels.mapi.gateway import SubmitKind, SubmitOutcome
from refund_adapter.engine.submitter import RETRY_DELAY_SECONDS, Decision
from refund_adapter.engine.submitter import decide as decide_verdict
from refund_adapter.models import Batch, BatchDetail, BatchState
from refund_adapter.money import BEIJING

FORMED_ON = date(2026, 11, 25)
NEXT_DAY = date(2026, 11, 26)


def decide(outcome: SubmitOutcome, sent: Batch, today: date, first_query_after: float) -> Decision:
    """The engine's decision on the MAPI channel's verdict on `outcome`, answered at noon of `today` in Beijing."""
    return decide_verdict(verdict(outcome, sent, datetime.combine(today, time(12), BEIJING)), sent, first_query_after)


def batch(attempts: int) -> Batch:
    detail = BatchDetail(1, "2026112500000001", Decimal("1.00"), "r")
    return Batch(1, "main", "20261125ABCD000001", BatchState.SENDING, (detail,), datetime.now(UTC), attempts)


@pytest.mark.parametrize(
    ("outcome", "attempts", "today", "state"),
    [
        (SubmitOutcome(SubmitKind.ACCEPTED), 1, FORMED_ON, BatchState.SUBMITTED),
        (SubmitOutcome(SubmitKind.PROCESSING), 1, FORMED_ON, BatchState.SUBMITTED),
        (SubmitOutcome(SubmitKind.DUPLICATE, "DUPLICATE_BATCH_NO"), 2, FORMED_ON, BatchState.SUBMITTED),
        (SubmitOutcome(SubmitKind.UNKNOWN), 1, FORMED_ON, BatchState.UNKNOWN),
        (SubmitOutcome(SubmitKind.REJECTED, "SYSTEM_ERROR"), 1, FORMED_ON, BatchState.PENDING),
        (SubmitOutcome(SubmitKind.REJECTED, "SELLER_STATUS_NOT_ALLOW"), 1, FORMED_ON, BatchState.REJECTED),
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 1, FORMED_ON, BatchState.REJECTED),
        # formed before midnight, first sent after: never accepted, so its refunds get a new batch_no
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 1, NEXT_DAY, BatchState.ABANDONED),
        # a resend after midnight: an earlier send may have landed, so only the query may say
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 2, NEXT_DAY, BatchState.UNKNOWN),
    ],
)
def test_decide(outcome: SubmitOutcome, attempts: int, today: date, state: BatchState) -> None:
    assert decide(outcome, batch(attempts), today, 300).state is state


def two_details(attempts: int) -> Batch:
    details = tuple(BatchDetail(i, f"202611250000000{i}", Decimal("1.00"), "r") for i in (1, 2))
    return Batch(1, "main", "20261125ABCD000001", BatchState.SENDING, details, datetime.now(UTC), attempts)


@pytest.mark.parametrize(
    ("sent", "state", "split"),
    [
        (two_details(1), BatchState.ABANDONED, True),  # a first send refused whole: halve it to find the detail
        (batch(1), BatchState.REJECTED, False),  # the detail alone: it fails with Alipay's code
        (batch(2), BatchState.REJECTED, False),
        # a resend: an earlier send may have landed unseen, and new batch_nos could pay twice: an operator decides
        (two_details(2), BatchState.REVIEW, False),
    ],
)
def test_a_refusal_one_detail_may_cause_isolates_that_detail(sent: Batch, state: BatchState, split: bool) -> None:
    outcome = SubmitOutcome(SubmitKind.DETAIL_REFUSED, "DETAIL_DATA_FORMAT_ERROR")
    decision = decide(outcome, sent, FORMED_ON, 300)
    assert (decision.state, decision.split, decision.code) == (state, split, "DETAIL_DATA_FORMAT_ERROR")


@pytest.mark.parametrize(
    ("outcome", "attempts", "today", "decision"),
    [
        (SubmitOutcome(SubmitKind.ACCEPTED), 1, FORMED_ON, Decision(BatchState.SUBMITTED, query_after=300)),
        (SubmitOutcome(SubmitKind.PROCESSING), 1, FORMED_ON, Decision(BatchState.SUBMITTED, query_after=300)),
        (SubmitOutcome(SubmitKind.DUPLICATE, "DUPLICATE_BATCH_NO"), 2, FORMED_ON,
         Decision(BatchState.SUBMITTED, query_after=300)),
        (SubmitOutcome(SubmitKind.UNKNOWN), 1, FORMED_ON, Decision(BatchState.UNKNOWN, query_after=300)),
        (SubmitOutcome(SubmitKind.REJECTED, "SYSTEM_ERROR"), 1, FORMED_ON,
         Decision(BatchState.PENDING, code="SYSTEM_ERROR", retry_after=RETRY_DELAY_SECONDS)),
        (SubmitOutcome(SubmitKind.REJECTED, "SELLER_STATUS_NOT_ALLOW"), 1, FORMED_ON,
         Decision(BatchState.REJECTED, code="SELLER_STATUS_NOT_ALLOW")),
        # an F with no error code: Alipay refused it (no money moved), for a reason it did not say
        (SubmitOutcome(SubmitKind.REJECTED), 1, FORMED_ON, Decision(BatchState.REJECTED, code="UNKNOWN_ERROR")),
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 2, FORMED_ON,
         Decision(BatchState.REJECTED, code="BATCH_NO_FORMAT_ERROR")),
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 1, NEXT_DAY,
         Decision(BatchState.ABANDONED, code="BATCH_NO_FORMAT_ERROR")),
        # the resend is asked about at once: only the query can say whether the first send landed
        (SubmitOutcome(SubmitKind.REJECTED, "BATCH_NO_FORMAT_ERROR"), 2, NEXT_DAY,
         Decision(BatchState.UNKNOWN, code="BATCH_NO_FORMAT_ERROR", query_after=0)),
    ],
)
def test_decide_sets_the_code_and_when_to_query_or_resend(
    outcome: SubmitOutcome, attempts: int, today: date, decision: Decision
) -> None:
    """Not only the state: the code the refunds carry, and when the Alipay query or the submitter acts next."""
    assert decide(outcome, batch(attempts), today, 300) == decision
