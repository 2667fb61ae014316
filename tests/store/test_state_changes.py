"""StateChanges: a batch-wide write's changes, whose models are made only when read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from refund_adapter.models import Refund, RefundRequest, RefundState, ReportState
from refund_adapter.store import StateChange, StateChanges, any_final

AT = datetime(2026, 12, 7, tzinfo=UTC)


def change(refund_id: int, state: RefundState = RefundState.SUCCEEDED) -> StateChange:
    request = RefundRequest(platform="generic", shop="s", platform_refund_id=f"r{refund_id}", order_id="o",
                            trade_no=f"T{refund_id}", amount=Decimal("1.00"), currency="CNY", reason="",
                            alipay_account="main")
    refund = Refund(id=refund_id, request=request, state=state, code=None, batch_id=1, batch_reference="B1",
                    report_state=ReportState.PENDING, created_at=AT, updated_at=AT)
    return StateChange(refund, RefundState.SUBMITTED)


def counting(rows: list[int], final: bool) -> tuple[StateChanges, list[int]]:
    made: list[int] = []

    def make(row: int) -> StateChange:
        made.append(row)
        return change(row)

    return StateChanges(rows, final, make), made


def test_the_count_and_finality_make_no_model() -> None:
    changes, made = counting(list(range(1000)), final=True)
    assert len(changes) == 1000 and any_final(changes) and made == []


def test_reading_makes_each_model_once_in_order() -> None:
    changes, made = counting([3, 1, 2], final=True)
    assert [c.refund.id for c in changes] == [3, 1, 2]
    assert changes[0].refund.id == 3 and changes[-1].refund.id == 2
    assert made == [3, 1, 2]  # iterated and indexed, each made once


async def test_load_makes_them_all_a_chunk_per_turn() -> None:
    changes, made = counting(list(range(StateChanges.CHUNK * 2 + 5)), final=False)
    await changes.load()
    assert made == list(range(StateChanges.CHUNK * 2 + 5)) and not any_final(changes)


def test_compared_by_value_with_a_list() -> None:
    changes, _ = counting([1, 2], final=True)
    assert changes == [change(1), change(2)] and changes != [change(1)]


def test_any_final_of_a_plain_list_reads_the_states() -> None:
    assert any_final([change(1, RefundState.SUBMITTED), change(2, RefundState.FAILED)])
    assert not any_final([change(1, RefundState.SUBMITTED)])
