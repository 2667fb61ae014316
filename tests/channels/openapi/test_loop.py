"""The whole loop through an OpenAPI account (`alipay.trade.refund`) for the generic platform, over real
loopback HTTP: signed webhook -> store -> batch -> one signed call per refund -> verdict -> report to the shop.
On SQLite and PostgreSQL; beside a MAPI account in one run; and with every way an answer can be lost or
doubtful, each resolved by the query into exactly one refund at the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refund_adapter.demo import run_demo


async def test_every_refund_is_paid_once_and_reported(store_url: str) -> None:
    summary = await run_demo(60, store_url=store_url, deadline_s=60, channel="openapi")
    data = summary.as_json()
    # refunds 7 and 47 hit closed trades, 23 a seller without balance: ACQ codes, told to the shop.
    assert (data["succeeded"], data["failed"], data["rejected"]) == (57, 3, 0)
    assert data["reported"] == 60 and data["unexpected_results"] == 0
    assert (data["paid_once"], data["paid_twice"]) == (57, 0)
    assert data["received"] == {"mapi_batches": 0, "openapi_calls": 60}
    assert summary.ok


async def test_a_mapi_and_an_openapi_account_refund_side_by_side(store_url: str) -> None:
    """Even refunds through the MAPI account's shop, odd ones through the OpenAPI account's: one store, one engine,
    one sandbox ledger."""
    summary = await run_demo(40, store_url=store_url, deadline_s=60, channel="both")
    data = summary.as_json()
    assert summary.ok, data
    assert (data["succeeded"], data["failed"], data["paid_once"], data["paid_twice"]) == (38, 2, 38, 0)
    assert data["received"]["openapi_calls"] == 20 and data["received"]["mapi_batches"] >= 1


FAST_TIMEOUT = {"http": {"connect_timeout_seconds": 0.5, "total_timeout_seconds": 1.0}}


@pytest.mark.parametrize(("faults", "sections", "calls"), [
    # The sandbox refunds, then answers ACQ.SYSTEM_ERROR: unknown; the query finds the refunds, no resend.
    pytest.param({"acq_system_error": {"value": "after", "times": 3}}, {}, 10, id="system-error-after"),
    # ACQ.SYSTEM_ERROR before refunding: the query finds nothing; the same out_request_no is sent again.
    pytest.param({"acq_system_error": {"value": "before", "times": 2}}, {}, 12, id="system-error-before"),
    # The answer comes after the client gave up: the refunds were made; the query finds them.
    pytest.param({"hang_seconds": {"value": 3.0, "times": 2}}, FAST_TIMEOUT, 10, id="timeout-after-processing"),
    # The connection closed instead of an answer, after refunding.
    pytest.param({"close_after_processing": 2}, {}, 10, id="closed-after-processing"),
    # A 5xx before anything was processed: unknown; the query finds nothing; sent again.
    pytest.param({"answer_5xx": 1}, {}, 10, id="5xx"),
    # fund_change=N on the first call: confirmed by the query before it counts.
    pytest.param({"answer_fund_change_n": 3}, {}, 10, id="fund-change-n"),
    # Rate limited twice: the account backs off and sends the same calls again.
    pytest.param({"rate_limit": 2}, {}, 10, id="rate-limited"),
])
async def test_doubtful_answers_end_in_exactly_one_refund_each(
    tmp_path: Path, faults: dict[str, Any], sections: dict[str, Any], calls: int
) -> None:
    summary = await run_demo(10, store_url=f"sqlite:///{tmp_path / 'r.db'}", faults=faults, channel="openapi",
                             first_query_after_seconds=0.5, deadline_s=30, sections=sections)
    data = summary.as_json()
    assert summary.ok, data
    assert (data["succeeded"], data["paid_once"], data["paid_twice"]) == (9, 9, 0)
    assert data["received"]["openapi_calls"] == calls  # refund calls the sandbox took (a 5xx or 40005 is none)
