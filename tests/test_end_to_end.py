"""The whole loop over real loopback HTTP: signed webhook -> store -> batch -> sandbox -> notify (or query)
-> report to the shop, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from refund_adapter import hookimpl
from refund_adapter.demo import run_demo
from refund_adapter.models import Refund, RefundState


async def test_every_refund_is_paid_once_and_reported(store_url: str) -> None:
    summary = await run_demo(60, store_url=store_url, deadline_s=60)
    data = summary.as_json()
    # refunds 7 and 47 hit closed trades, 23 a seller without balance: scripted failures, told to the shop.
    assert (data["succeeded"], data["failed"], data["rejected"]) == (57, 3, 0)
    assert data["reported"] == 60
    assert data["unexpected_results"] == 0 and data["paid_twice"] == 0
    assert summary.ok


async def test_a_lost_notify_is_resolved_by_the_refund_query(tmp_path: Path) -> None:
    summary = await run_demo(
        10, store_url=f"sqlite:///{tmp_path / 'r.db'}", faults={"drop_notifies": True},
        first_query_after_seconds=0.5, deadline_s=30,
    )
    assert summary.ok, summary.as_json()
    assert summary.as_json()["succeeded"] == 9


async def test_an_unknown_submit_is_resolved_without_a_new_batch_no(tmp_path: Path) -> None:
    summary = await run_demo(
        10, store_url=f"sqlite:///{tmp_path / 'r.db'}", faults={"answer_5xx": 1},
        first_query_after_seconds=0.5, deadline_s=30,
    )
    assert summary.ok, summary.as_json()
    assert summary.as_json()["batches"] == 1  # resolved by query + resend of the same batch_no


class Transitions:
    """A plugin listening to `refund_state_changed`, as an operator's notification plugin would."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[str | None, str]]] = {}

    @hookimpl
    async def refund_state_changed(self, refund: Refund, old_state: RefundState | None, new_state: RefundState) -> None:
        assert refund.state is new_state
        self.seen.setdefault(refund.request.platform_refund_id, []).append(
            (old_state.value if old_state else None, new_state.value)
        )


async def test_hook_refund_state_changed_follows_each_refund_through_its_life(tmp_path: Path) -> None:
    listener = Transitions()
    summary = await run_demo(10, store_url=f"sqlite:///{tmp_path / 'r.db'}", deadline_s=30, extra_plugins=[listener])
    assert summary.ok
    # Broadcasts follow commits made by concurrent loops: the batched and submitted ones may swap places.
    middle = sorted([("received", "batched"), ("batched", "submitted")])
    for refund_id, final in (("r0", "succeeded"), ("r7", "failed")):  # r7 refunds a closed trade
        seen = listener.seen[refund_id]
        assert seen[0] == (None, "received") and seen[-1] == ("submitted", final)
        assert sorted(seen[1:-1]) == middle
    assert len(listener.seen) == 10
