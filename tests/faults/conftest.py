"""The fault matrix's one-line summaries, printed at the end of the run for the reliability page."""

from __future__ import annotations

import pytest

from tests.faults.matrix import LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(LINES, [])
    if lines:
        terminalreporter.section("fault matrix")
        for line in lines:
            terminalreporter.write_line(line)
