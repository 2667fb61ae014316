"""What a submit answer means for a batch: nothing unproven fails a refund, nothing accepted is re-batched."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from refund_adapter.alipay.gateway import SubmitKind, SubmitOutcome
from refund_adapter.engine.submitter import decide
from refund_adapter.models import Batch, BatchDetail, BatchState

FORMED_ON = date(2026, 11, 25)
NEXT_DAY = date(2026, 11, 26)


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
