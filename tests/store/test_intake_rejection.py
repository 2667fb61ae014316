"""A request intake marked unpayable (`RefundRequest.rejection`) is stored REJECTED under its code, on both
backends: never batched, its report due at once, and its amount not counted against its trade's paid amount."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.models import RefundRequest, RefundState, ReportState, Unpayable
from refund_adapter.store import store_from_url

NOW = 1_780_000_000.0


def _request(refund_id: str, amount: str, **changes: object) -> RefundRequest:
    request = RefundRequest("generic", "s1", refund_id, "o1", "2026120700000001", Decimal(amount), "CNY", "", "main",
                            paid_amount=Decimal("10.00"))
    return dataclasses.replace(request, **changes)


async def test_a_rejected_request_is_stored_rejected_and_reported_never_batched(store_url: str) -> None:
    store = store_from_url(store_url)
    await store.open()
    try:
        usd = _request("r1", "9.00", currency="USD", rejection=Unpayable.CURRENCY)
        (result,) = await store.accept([usd], NOW)
        assert (result.refund.state, result.refund.code) == (RefundState.REJECTED, "UNSUPPORTED_CURRENCY")
        stored = await store.get_refund(result.refund.id)
        assert stored is not None
        assert (stored.state, stored.code, stored.report_state) == (RefundState.REJECTED, "UNSUPPORTED_CURRENCY",
                                                                     ReportState.PENDING)
        # Its 9.00 moved no money: a 10.00 refund of the same trade still fits the paid amount.
        (payable,) = await store.accept([_request("r2", "10.00")], NOW)
        assert (payable.refund.state, payable.refund.code) == (RefundState.RECEIVED, None)
        batch = await store.create_batch("main", 1000, batch_nos(date(2026, 12, 7)), NOW)
        assert batch is not None and [d.refund_id for d in batch.details] == [payable.refund.id]
        assert [r.id for r in await store.claim_reports(NOW, 10, 60)] == [result.refund.id]
    finally:
        await store.close()
