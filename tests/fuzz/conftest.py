"""The fuzzers' fixtures: one running app per session (the web layer alone, or the whole loop for the notifies),
and the count of inputs tried per endpoint, printed at the end of the run for docs/reliability.md."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from refund_adapter_shopify.payments import Payment, PaymentBook

from .harness import PAID_TRADE, PAYMENT, SESSION_SHOP, Background, Submitted, submit_one, tried, world


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """The app with its engine stopped (nothing moves in the store but what a request writes), and one Shopify
    payment recorded, so that refund sessions naming it reach the core's checks."""
    background = Background(lambda: world(tmp_path_factory.mktemp("fuzz-web"), run_engine=False))
    try:
        assert background.world is not None
        payment = Payment(SESSION_SHOP, PAYMENT, PAID_TRADE, Decimal("100.00"), "order-1")
        background.run(PaymentBook.in_store(background.world.store).record([payment]))
        yield background
    finally:
        background.close()


@pytest.fixture(scope="session")
def notify_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Submitted]:
    """The whole loop with one refund submitted to the sandbox, whose notifies a gate holds: their notify_ids
    stay delivered but unacknowledged, so `notify_verify` confirms them to whoever sends them."""
    background = Background(lambda: world(tmp_path_factory.mktemp("fuzz-notify"), run_engine=True))
    try:
        yield submit_one(background)
    finally:
        background.close()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if tried:
        terminalreporter.section("fuzzing: inputs tried per endpoint")
        for family, count in sorted(tried.items()):
            terminalreporter.write_line(f"{family:46} {count:7d}")
        terminalreporter.write_line(f"{'total':46} {sum(tried.values()):7d}")
