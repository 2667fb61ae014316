"""Figures a test run prints at its end (counts, stalls), one section each, for docs/reliability.md: pytest
captures what a test prints, so tests record their lines here and the root conftest prints them all."""

from __future__ import annotations

import pytest

_SECTIONS = pytest.StashKey[dict[str, list[str]]]()


def record(config: pytest.Config, section: str, line: str) -> None:
    config.stash.setdefault(_SECTIONS, {}).setdefault(section, []).append(line)


def print_all(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for section, lines in config.stash.get(_SECTIONS, {}).items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)
