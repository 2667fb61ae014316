"""The fault matrix: each fault of the gateway, of Alipay's notifies, of the platform and of the database, alone,
across the whole loop, on SQLite and on PostgreSQL (`store_url`). Every cell ends with `FaultLoop.verify`: each
refund paid exactly once at the sandbox, reported exactly once, nothing left unresolved (tests/faults/matrix.py).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from refund_adapter.models import BatchState, RefundState
from refund_adapter.testing import ADMIN_HEADERS
from refund_adapter.web.problems import PROBLEM_TYPE_PREFIX
from tests.faults.breakage import BackendKiller, SmallDisk, integrity
from tests.faults.matrix import (
    BATCH_AT_ONCE,
    HOUR,
    HTTP_TIMEOUT,
    NOT_QUERYING,
    QUICK_QUERIES,
    REFUNDS,
    SECRET,
    SHOP,
    GatedShop,
    OpenCell,
    fault_loop,
)


@pytest.fixture
def cell(store_url: str, request: pytest.FixtureRequest) -> OpenCell:
    """`cell(name, faults=..., **config sections)`: the loop for one cell of the matrix, on this store."""
    return functools.partial(fault_loop, store_url=store_url, config=request.config)


# --- the gateway ------------------------------------------------------------------------------------------


async def test_gateway_answering_processing(cell: OpenCell) -> None:
    """`P` is accepted-but-not-final: SUBMITTED, resolved by the notify, never sent again."""
    async with cell("gateway answers P", faults={"answer_processing": True}, reconciler=NOT_QUERYING) as loop:
        await loop.send()
        await loop.settled()
        batches = await loop.store.list_batches()
        assert {batch.submit_attempts for batch in batches} == {1}
        await loop.verify()


async def test_gateway_answering_5xx(cell: OpenCell) -> None:
    """A 500 before anything is processed: UNKNOWN, then the query finds nothing and the SAME batch_no is sent
    again (never a new one)."""
    async with cell("gateway answers 5xx", faults={"answer_5xx": {"value": True, "times": 2}}) as loop:
        await loop.send()
        await loop.settled()
        batches = await loop.store.list_batches()
        assert max(batch.submit_attempts for batch in batches) >= 2
        assert loop.transitions.went_through(RefundState.UNKNOWN)
        loop.notes.append(f"submits per batch {sorted(b.submit_attempts for b in batches)}")
        await loop.verify()


async def test_gateway_hanging_past_the_client_timeout(cell: OpenCell) -> None:
    """The first batch is processed but answered only after the client gave up, and its notify comes later
    still: UNKNOWN, then resolved (by the query or the late notify) without being sent again."""
    faults = {"hang_seconds": {"value": HTTP_TIMEOUT + 1, "times": 1},
              "delay_notify_seconds": {"value": HTTP_TIMEOUT + 0.5, "times": 1}}
    async with cell("gateway hangs past timeout", faults=faults) as loop:
        await loop.send()
        await loop.settled()
        unknown = loop.transitions.went_through(RefundState.UNKNOWN)
        assert len(unknown) == 3, unknown  # the first batch's refunds
        batches = await loop.store.list_batches()
        assert {batch.submit_attempts for batch in batches} == {1}
        loop.notes.append("3 refunds UNKNOWN after the timeout, then resolved")
        await loop.verify()


async def test_gateway_closing_the_connection_after_processing(cell: OpenCell) -> None:
    """The batch is processed, then the connection closes with no answer: UNKNOWN until the notify or the query
    proves it landed; the same batch_no is never a second payment."""
    async with cell("gateway closes after processing", faults={"close_after_processing": 1}) as loop:
        await loop.send()
        await loop.settled()
        assert loop.sandbox.state.faults.snapshot()["close_after_processing"] is False  # the close happened
        batches = await loop.store.list_batches()
        assert {batch.submit_attempts for batch in batches} == {1}
        unknown = len(loop.transitions.went_through(RefundState.UNKNOWN))
        loop.notes.append(f"{unknown} refunds UNKNOWN (0: the notify had already settled the batch)")
        await loop.verify()


# --- Alipay's notifies ------------------------------------------------------------------------------------


async def test_notifies_dropped(cell: OpenCell) -> None:
    async with cell("notifies dropped", faults={"drop_notifies": True}) as loop:
        await loop.send()
        await loop.settled()
        ledger = await loop.sandbox_json("batches")
        assert {n["status"] for batch in ledger for n in batch["notifications"]} == {"dropped"}
        loop.notes.append("every batch resolved by the query")
        await loop.verify()


async def test_notifies_delayed_past_the_query_schedule(cell: OpenCell) -> None:
    """The query resolves every batch; the notifies, arriving after the last scheduled query, are acknowledged
    (`success`, or Alipay would resend them for a day) and change nothing."""
    delay = 1.0  # past the first query and the whole schedule after it (about 0.3 s)
    async with cell("notifies delayed past queries", faults={"delay_notify_seconds": delay},
                    reconciler=QUICK_QUERIES) as loop:
        await loop.send()
        await loop.settled()

        async def late_notifies_acknowledged() -> bool:
            ledger = await loop.sandbox_json("batches")
            return all(n["acknowledged"] for batch in ledger for n in batch["notifications"])

        await loop.wait("the late notifies acknowledged", late_notifies_acknowledged)
        await loop.verify()


async def test_alipay_slower_than_the_whole_query_schedule(cell: OpenCell) -> None:
    """Alipay evaluates the batches only after every scheduled query was answered "nothing yet": the batches go to
    REVIEW (visible to the operator, their refunds untouched), and the notify that finally comes settles them."""
    # The evaluation 2.5 s after the batch, the last query after about 0.3 s: review comes long before the notify.
    async with cell("alipay slower than all queries", evaluation_delay_seconds=2.5,
                    reconciler=QUICK_QUERIES) as loop:
        await loop.send()

        async def in_review() -> bool:
            return len(await loop.store.list_batches(state=BatchState.REVIEW)) == 2

        await loop.wait("both batches in review", in_review)
        assert (await loop.store.counts())["refunds"] == {"submitted": REFUNDS}
        await loop.settled()
        loop.notes.append("both batches in REVIEW after the last query, then settled by the notify")
        await loop.verify()


async def test_notifies_repeated(cell: OpenCell) -> None:
    async with cell("notifies repeated x3", faults={"duplicate_notifies": 3}, reconciler=NOT_QUERYING) as loop:
        await loop.send()
        await loop.settled()
        notifications = [n for batch in loop.sandbox.state.batches.values() for n in batch.notifications]
        await loop.wait("every copy answered", lambda: all(len(n.attempts) == 3 for n in notifications))
        assert [a["body"] for n in notifications for a in n.attempts] == ["success"] * 3 * len(notifications)
        await loop.verify()


async def test_notify_before_the_sync_ack(cell: OpenCell) -> None:
    """Alipay's notify arrives before its own synchronous `T`: the result is recorded while the batch is still
    `sending`, and the `T` that follows reopens nothing."""
    async with cell("notify before the sync ack", faults={"notify_before_ack": True},
                    reconciler=NOT_QUERYING) as loop:
        await loop.send()
        await loop.settled()
        finals = loop.transitions.finals()
        assert set(finals) == loop.acknowledged
        assert all(olds == [RefundState.BATCHED] for olds in finals.values()), finals  # never SUBMITTED first
        assert {batch.state for batch in await loop.store.list_batches()} == {BatchState.COMPLETED}
        await loop.verify()


async def test_notify_for_a_batch_not_yet_marked_sent(cell: OpenCell) -> None:
    """The submit hangs past the client timeout, and the notify arrives meanwhile, while our batch is still
    `sending`: recorded, and the UNKNOWN the timeout then brings changes nothing."""
    async with cell("notify while batch is sending", faults={"hang_seconds": {"value": HTTP_TIMEOUT + 1, "times": 1}},
                    reconciler=NOT_QUERYING) as loop:
        await loop.send()
        await loop.settled()
        first = {f"r{i}" for i in range(3)}
        finals = loop.transitions.finals()
        assert all(finals[refund_id] == [RefundState.BATCHED] for refund_id in first), finals
        assert not loop.transitions.went_through(RefundState.UNKNOWN)
        await loop.verify()


async def test_notifies_out_of_order(cell: OpenCell) -> None:
    """Notifies held until every batch was sent, then delivered newest first."""
    async with cell("notifies in reverse order", faults={"hold_notifies": True}, reconciler=NOT_QUERYING) as loop:
        await loop.send()

        async def all_sent_and_held() -> bool:
            batches = await loop.store.list_batches()
            sent = len(batches) == 2 and all(b.state is BatchState.SUBMITTED for b in batches)
            return sent and len(loop.sandbox.state.held) == 2

        await loop.wait("both batches sent, their notifies held", all_sent_and_held)
        async with loop.http.post(loop.sandbox.base_url + "/sandbox/notifies/release",
                                  json={"order": "reverse"}) as resp:
            assert resp.status == 200
        await loop.settled()
        ledger = await loop.sandbox_json("batches")
        firsts = [batch["notifications"][0]["attempts"][0]["at"] for batch in ledger]
        assert firsts == sorted(firsts, reverse=True)
        await loop.verify()


# --- the platform -----------------------------------------------------------------------------------------


async def test_platform_down_for_an_hour(cell: OpenCell) -> None:
    """The shop answers 503 for an hour (scaled): the reporter backs off, keeps trying (its give-up window is a
    day), and delivers each result once the shop is back."""
    async with cell("platform down for an hour") as loop:
        loop.shop.down_until = math.inf  # down from the start, and for an hour after the last result exists

        async def all_final() -> bool:
            return (await loop.store.counts())["refunds"] == {"succeeded": REFUNDS}

        await loop.send()
        await loop.wait("every refund final", all_final)
        loop.shop.down_until = time.monotonic() + HOUR
        await loop.settled()
        assert loop.shop.refused_while_down >= REFUNDS
        attempts = [refund.report_attempts for refund in await loop.store.list_refunds()]
        loop.notes.append(f"{loop.shop.refused_while_down} reports refused while down, "
                          f"attempts per report {min(attempts)}-{max(attempts)}")
        await loop.verify()


async def test_platform_down_past_the_give_up_window(cell: OpenCell) -> None:
    """Down longer than the reporter's give-up window: every result becomes a visible dead letter, and the
    operator's retry delivers each once the shop is back."""
    give_up = HOUR / 4
    reporter = {"base_delay_seconds": 0.05, "max_delay_seconds": 0.2, "give_up_after_seconds": give_up}
    async with cell("platform down past give-up", reporter=reporter) as loop:
        loop.shop.down_until = math.inf

        async def all_dead() -> bool:
            return (await loop.store.counts())["reports"] == {"dead": REFUNDS}

        await loop.send()
        await loop.wait("every report a dead letter", all_dead)
        assert loop.shop.results == {}
        loop.shop.down_until = 0.0  # back
        async with loop.http.post(loop.adapter.url + "/-/dead-letters/retry", headers=ADMIN_HEADERS) as resp:
            assert (resp.status, await resp.json()) == (200, {"requeued": REFUNDS})
        await loop.settled()
        loop.notes.append(f"{REFUNDS} dead letters after {loop.shop.refused_while_down} refusals, "
                          "delivered by the operator's retry")
        await loop.verify()


# --- the database -----------------------------------------------------------------------------------------


async def test_postgres_backend_killed_mid_transaction(pg_url: str, request: pytest.FixtureRequest) -> None:
    """Our backends terminated inside their transactions: a webhook's intake (answered 503, nothing kept, stored
    when sent again), the batcher's batch creation, and a notify's recording (Alipay sends it again)."""
    killer = BackendKiller(pg_url)
    async with fault_loop("postgres backends killed", pg_url, request.config, reconciler=NOT_QUERYING) as loop:
        async with killer.locked("refunds"):
            webhook = asyncio.create_task(loop.send(0))
            await killer.kill_waiting("INSERT INTO refunds")
        assert await webhook == {0: 503}
        assert_problem(loop.refusals[0], "store-unavailable")
        assert await loop.store.find_refund("generic", SHOP, "r0") is None  # the 503 left nothing behind
        async with killer.locked("notifies"):
            async with killer.locked("batches"):
                assert set((await loop.send()).values()) == {200}
                await killer.kill_waiting("INSERT INTO batches")
            await killer.kill_waiting("INSERT INTO notifies")
        await loop.settled()
        loop.notes.append(killer.summary())
        await loop.verify()


async def test_postgres_backend_killed_recording_a_submit_answer(pg_url: str, request: pytest.FixtureRequest) -> None:
    """Alipay accepted the batch, but recording its answer dies with the backend: the batch stays `sending`, and
    the notify settles it; it is never sent under a new batch_no, never paid twice."""
    killer = BackendKiller(pg_url)
    faults = {"hang_seconds": {"value": HTTP_TIMEOUT / 2, "times": 1}}  # time to lock before the answer comes
    async with fault_loop("backend killed recording a submit", pg_url, request.config, faults=faults,
                          reconciler=NOT_QUERYING) as loop:
        await loop.send()
        await loop.wait("the first batch at the sandbox", lambda: bool(loop.sandbox.state.batches))
        async with killer.locked("batches"):
            await killer.kill_waiting("UPDATE batches SET state = $1")  # set_batch_state, after the submit
        await loop.settled()
        loop.notes.append(killer.summary())
        await loop.verify()


async def test_postgres_backend_killed_recording_a_delivered_report(
    pg_url: str, request: pytest.FixtureRequest
) -> None:
    """The shop has the results, but recording that fails (the backend terminated): the reporter records it again
    instead of leaving the reports leased, to be delivered a second time when the lease runs out."""
    shop, killer = GatedShop(SECRET), BackendKiller(pg_url)
    async with fault_loop("backend killed recording a report", pg_url, request.config, shop=shop) as loop:
        await loop.send()
        await loop.wait("a result at the shop", shop.arrived.is_set)
        async with killer.locked("refunds"):
            shop.gate.set()
            await killer.kill_waiting("report_state = 'delivered'")
        await loop.settled()
        loop.notes.append(f"{killer.summary()}; none delivered twice")
        await loop.verify()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "disk")
    try:
        with disk.mounted():
            yield disk
    except PermissionError as exc:
        pytest.skip(f"{exc}: the disk-full cell needs root to mount a small tmpfs")


async def test_sqlite_disk_full(small_disk: SmallDisk, request: pytest.FixtureRequest) -> None:
    """The file system holding the database fills up: webhooks are answered 503 and a notify `fail` (never an
    acknowledgement of what is not on disk), nothing is half-written, and everything resumes once space is back."""
    disk = small_disk
    db = disk.path / "refunds.db"
    async with fault_loop("sqlite disk full", f"sqlite:///{db}", request.config, reconciler=NOT_QUERYING,
                          faults={"hold_notifies": 1}, batching=BATCH_AT_ONCE) as loop:
        assert set((await loop.send(0, 1)).values()) == {200}
        await loop.wait("the first batch's notify held", lambda: len(loop.sandbox.state.held) == 1)
        (notification, _), = loop.sandbox.state.held
        with disk.full() as filled:
            async with loop.http.post(loop.sandbox.base_url + "/sandbox/notifies/release") as resp:
                assert resp.status == 200
            await loop.wait("the notify refused", lambda: bool(notification.attempts))
            assert notification.attempts[0]["status"] == 503 and notification.attempts[0]["body"] == "fail"
            statuses = await loop.send(2, 3, 4, 5)
            refused = sorted(i for i, status in statuses.items() if status != 200)
            assert refused, f"every webhook acknowledged on a full disk: {statuses}"
            for i in refused:
                assert statuses[i] == 503
                assert_problem(loop.refusals[i], "store-unavailable")
            for i in range(REFUNDS):
                stored = await loop.store.find_refund("generic", SHOP, f"r{i}")
                assert (stored is not None) == (f"r{i}" in loop.acknowledged), f"r{i}"
            assert integrity(db) == "ok"
        assert set((await loop.send(*refused)).values()) == {200}  # the shop sends them again
        await loop.settled()
        loop.notes.append(f"tmpfs filled ({filled // 1024} KiB more): webhooks {refused} answered 503, a notify "
                          f"`fail` ({len(notification.attempts)} attempts); all accepted once space was back")
        await loop.verify()
    assert integrity(db) == "ok"


async def test_sqlite_disk_full_recording_a_delivered_report(
    small_disk: SmallDisk, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """The shop has the results, but the disk is full when the adapter records that: it records it once space is
    back, and delivers nothing twice."""
    shop = GatedShop(SECRET)
    db = small_disk.path / "refunds.db"
    async with fault_loop("disk full recording a report", f"sqlite:///{db}", request.config, shop=shop) as loop:
        await loop.send()
        await loop.wait("a result at the shop", shop.arrived.is_set)
        with small_disk.full():
            shop.gate.set()
            await loop.wait("the engine refused by the full disk", lambda: _engine_saw_a_full_disk(caplog))
        await loop.settled()
        loop.notes.append("deliveries recorded once space was back: none delivered twice")
        await loop.verify()
    assert integrity(db) == "ok"


def _engine_saw_a_full_disk(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        "disk is full" in record.getMessage() or "disk is full" in str(record.exc_info and record.exc_info[1])
        for record in caplog.records
        if record.name.startswith("refund_adapter.engine")
    )


def assert_problem(refusal: tuple[str, str], slug: str) -> None:
    content_type, body = refusal
    assert content_type.startswith("application/problem+json"), refusal
    assert json.loads(body)["type"] == PROBLEM_TYPE_PREFIX + slug, body
