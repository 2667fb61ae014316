"""The conformance suite a platform plugin runs against itself, as SQLAlchemy's dialects run its compliance suite.

A plugin's test module subclasses `PlatformConformance` (keep the `Test` prefix off the base, put it on yours) and
supplies a few small things: its name, a fake of its platform's API (a `FakePlatform`), its settings section
pointing at that fake, a correctly signed webhook for a refund (and for any body), and which of the fake's requests
are reports. Every test below then runs the whole loop over real HTTP: the webhook into the adapter, the Alipay
sandbox paying, the report out to the fake:

    class TestAcmeConformance(PlatformConformance):
        platform = "acme"

        def fake_platform(self) -> FakePlatform: ...
        def settings(self, fake: FakePlatform) -> Mapping[str, Any]: ...
        async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook: ...
        def signed(self, run: ConformanceRun, body: bytes) -> Webhook: ...
        def is_report(self, call: Call) -> bool: ...
        def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None: ...

A platform that authenticates otherwise than by a signature over the body (a client certificate) overrides
`forged` too. The fixtures it needs (`running_sandbox`, `tmp_path`) come with the kit's pytest plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..models import Refund, RefundState, ReportState
from .adapter import running_adapter
from .fake_platform import Call, FakePlatform
from .fixtures import async_fixture
from .loop import AdapterLoop
from .refunds import wait_for_final_state, wait_for_report_state
from .sandbox import refunded_details, seed_trade
from .webhooks import Webhook, post_webhook

if TYPE_CHECKING:
    from ..sandbox import RunningSandbox

# Bodies no platform sends as a refund, each correctly signed by the plugin's `signed`: never a 5xx (a platform
# retries those, and a crash is a bug), never stored.
MALFORMED_BODIES: tuple[bytes, ...] = (
    b"",
    b"{",
    b"[]",
    b"null",
    b"42",
    b'"a refund"',
    b"{}",
    b'{"id": NaN}',
    b'{"amount": 1e999999}',
    b"\xff\xfe{}",
    b'{"text": "\\ud800"}',
    b"[" * 100_000,
    b'{"id": ' + b"9" * 5000 + b"}",
)


@dataclass(frozen=True)
class SampleRefund:
    """A refund the suite asks for: the plugin puts it where its platform would hold it and announces it."""

    number: int  # distinct within a test; derive the platform's ids from it
    trade_no: str  # the Alipay trade that paid the order (seeded in the sandbox)
    amount: Decimal = Decimal("12.30")
    paid: Decimal = Decimal("100.00")  # the order's total, paid by `trade_no`


@dataclass
class ConformanceRun:
    """One test's world: the plugin's fake platform, served, and the adapter configured for it."""

    fake: FakePlatform
    adapter: AdapterLoop
    platform: str

    @property
    def sandbox(self) -> RunningSandbox:
        return self.adapter.sandbox

    def sample(self, number: int) -> SampleRefund:
        """A refund of a trade of its own, paid and seeded in the sandbox."""
        refund = SampleRefund(number, f"2026120722{number:018d}")
        seed_trade(self.sandbox, refund.trade_no, refund.paid)
        return refund

    async def post(self, webhook: Webhook) -> tuple[int, bytes]:
        return await post_webhook(self.adapter.http, self.adapter.url, self.platform, webhook)

    async def refunds(self) -> list[Refund]:
        return await self.adapter.store.list_refunds(limit=1000)


class PlatformConformance:
    """The inherited tests; a subclass supplies the platform-specific pieces (see the module docstring)."""

    platform: ClassVar[str]  # the name the plugin registers its adapter under
    malformed_bodies: ClassVar[tuple[bytes, ...]] = MALFORMED_BODIES
    within: ClassVar[float] = 30.0  # seconds a refund may take to be paid and reported

    # --- what the plugin supplies -------------------------------------------------------------------------------

    def fake_platform(self) -> FakePlatform:
        """A new fake of the platform's API (not served yet)."""
        raise NotImplementedError

    def settings(self, fake: FakePlatform) -> Mapping[str, Any]:
        """The raw `platforms.<name>` section: one shop, Alipay account `main`, the API at `fake.url`."""
        raise NotImplementedError

    async def refund_webhook(self, run: ConformanceRun, refund: SampleRefund) -> Webhook:
        """Put `refund` where the platform would hold it (the fake, the plugin's data), and return the correctly
        signed webhook that announces it. Called once per refund; the suite may post the webhook several times."""
        raise NotImplementedError

    def signed(self, run: ConformanceRun, body: bytes) -> Webhook:
        """A delivery of `body`, whatever it holds, signed as the platform signs: for malformed bodies."""
        raise NotImplementedError

    def forged(self, webhook: Webhook, body: bytes) -> Webhook:
        """A forger's delivery of `body` (another refund's, well formed): by default with `webhook`'s headers, so
        its signature is of another body."""
        return replace(webhook, body=body)

    def is_report(self, call: Call) -> bool:
        """Whether a request the fake received is (part of) a report of a result."""
        raise NotImplementedError

    def already_reported(self, run: ConformanceRun, refund: SampleRefund) -> None:
        """Make the fake hold `refund`'s result already, answering a report of it as the platform does then."""
        raise NotImplementedError

    # --- the world of one test --------------------------------------------------------------------------------

    @async_fixture
    async def conformance_run(self, running_sandbox: RunningSandbox, tmp_path: Path) -> AsyncIterator[ConformanceRun]:
        fake = self.fake_platform()
        async with (
            fake.running(),
            running_adapter(running_sandbox, {self.platform: self.settings(fake)}, tmp_path) as adapter,
        ):
            yield ConformanceRun(fake, adapter, self.platform)

    async def _accepted(self, run: ConformanceRun, webhook: Webhook) -> None:
        status, body = await run.post(webhook)
        assert 200 <= status < 300, f"a valid webhook was answered {status}: {body[:500]!r}"

    # --- the suite ------------------------------------------------------------------------------------------

    async def test_a_forged_webhook_is_refused_and_nothing_stored(self, conformance_run: ConformanceRun) -> None:
        run = conformance_run
        refund, other = run.sample(1), run.sample(6)
        webhook, decoy = await self.refund_webhook(run, refund), await self.refund_webhook(run, other)
        status, body = await run.post(self.forged(decoy, webhook.body))
        assert 400 <= status < 500, f"a forged webhook was answered {status}: {body[:500]!r}"
        assert await run.refunds() == []
        await self._accepted(run, webhook)  # the same refund, genuine, is stored: the check above could see it
        assert [stored.request.trade_no for stored in await run.refunds()] == [refund.trade_no]

    async def test_a_replayed_webhook_is_stored_and_paid_once(self, conformance_run: ConformanceRun) -> None:
        run = conformance_run
        refund = run.sample(2)
        webhook = await self.refund_webhook(run, refund)
        await self._accepted(run, webhook)
        for status, body in await asyncio.gather(run.post(webhook), run.post(webhook)):
            assert 200 <= status < 300, f"a replay was answered {status}: {body[:500]!r}"
        paid = await wait_for_final_state(run.adapter.store, _of(refund), within=self.within)
        assert paid.state == RefundState.SUCCEEDED, paid
        assert [stored.request.trade_no for stored in await run.refunds()] == [refund.trade_no]
        assert refunded_details(run.sandbox, refund.trade_no) == 1

    async def test_malformed_bodies_are_a_4xx_never_a_5xx(self, conformance_run: ConformanceRun) -> None:
        run = conformance_run
        answers = {body[:40]: (await run.post(self.signed(run, body)))[0] for body in self.malformed_bodies}
        assert {body: status for body, status in answers.items() if not 400 <= status < 500} == {}
        assert await run.refunds() == []

    async def test_a_report_answered_with_a_5xx_is_retried(self, conformance_run: ConformanceRun) -> None:
        run = conformance_run
        refund = run.sample(3)
        webhook = await self.refund_webhook(run, refund)
        run.fake.answer_next(503, when=self.is_report)
        await self._accepted(run, webhook)
        reported = await wait_for_report_state(run.adapter.store, _of(refund), within=self.within)
        assert reported.report_state == ReportState.DELIVERED, reported
        answered = run.fake.answered(self.is_report)
        assert answered[0] == 503 and any(200 <= status < 300 for status in answered[1:]), answered

    async def test_a_report_answered_401_goes_to_the_dead_letters(self, conformance_run: ConformanceRun) -> None:
        run = conformance_run
        refund = run.sample(4)
        webhook = await self.refund_webhook(run, refund)
        run.fake.answer_next(401, times=100, when=self.is_report)
        await self._accepted(run, webhook)
        reported = await wait_for_report_state(run.adapter.store, _of(refund), within=self.within)
        assert reported.report_state == ReportState.DEAD, reported
        assert run.fake.answered(self.is_report) == [401]  # refused credentials are not retried

    async def test_a_result_the_platform_already_has_counts_as_delivered(
        self, conformance_run: ConformanceRun
    ) -> None:
        run = conformance_run
        refund = run.sample(5)
        webhook = await self.refund_webhook(run, refund)
        self.already_reported(run, refund)
        await self._accepted(run, webhook)
        reported = await wait_for_report_state(run.adapter.store, _of(refund), within=self.within)
        assert (reported.report_state, reported.report_attempts) == (ReportState.DELIVERED, 1), reported
        assert run.fake.answered(self.is_report), "the result was never reported"


def _of(refund: SampleRefund) -> Any:
    """Which stored refund is `refund`'s: the one of its trade (each sample has a trade of its own)."""
    return lambda stored: stored.request.trade_no == refund.trade_no
