"""The Saleor plugin against the kit's conformance suite: TRANSACTION_REFUND_REQUESTED in, transactionEventReport
out, over real HTTP between the fake Saleor, the adapter and the sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refund_adapter.testing import Call, ConformanceRun, FakePlatform, PlatformConformance, SampleRefund, Webhook

from ..saleor.fake_saleor import FakeSaleor, is_report, reference, section


class TestSaleorConformance(PlatformConformance):
    platform = "saleor"

    def fake_platform(self) -> FakePlatform:
        return FakeSaleor()

    def settings(self, fake: FakePlatform) -> Mapping[str, Any]:
        assert isinstance(fake, FakeSaleor)
        return section(fake)

    async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook:
        fake = _saleor(run)
        transaction = fake.add_transaction(str(refund.paid), trade_no=refund.trade_no)
        body = fake.refund_requested(transaction, str(refund.amount), granted_refund=f"G{refund.number}")
        fake.answered_with(transaction, reference(transaction, f"G{refund.number}"), str(refund.amount))
        return Webhook(fake.headers(body), body)

    def signed(self, run: ConformanceRun, body: bytes) -> Webhook:
        return Webhook(_saleor(run).headers(body), body)

    def is_report(self, call: Call) -> bool:
        return is_report(call)

    def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None:
        fake = _saleor(run)
        transaction = fake.transaction_of(refund.trade_no)
        fake.holds_result(transaction, reference(transaction, f"G{refund.number}"), str(refund.amount))


def _saleor(run: ConformanceRun) -> FakeSaleor:
    assert isinstance(run.fake, FakeSaleor)
    return run.fake
