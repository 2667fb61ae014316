"""The fuzzers' fixtures: one running app per session (the web layer alone, or the whole loop for the notifies),
and the count of inputs tried per endpoint, printed at the end of the run for docs/reliability.md."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from .harness import Background, tried, world


@pytest.fixture(scope="session")
def web_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """The app with its engine stopped: nothing moves in the store but what a request writes."""
    background = Background(lambda: world(tmp_path_factory.mktemp("fuzz-web"), run_engine=False))
    try:
        yield background
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
            terminalreporter.write_line(f"{family:40} {count:7d}")
        terminalreporter.write_line(f"{'total':40} {sum(tried.values()):7d}")
