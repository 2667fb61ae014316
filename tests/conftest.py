"""Shared fixtures: a private PostgreSQL database per test run, created here and dropped at the end."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from tests import figures as printed

PG_ADMIN_DSN = os.environ.get("REFUND_ADAPTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _admin(sql: str, dsn: str = PG_ADMIN_DSN) -> None:
    """Run SQL on a database from a thread of its own: fixtures here may be set up inside a running event loop."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The DSN of a database that exists for this run only."""
    name = f"refund_adapter_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A clean schema for one test: everything in the run's database is dropped first."""
    _admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public;", pg_database)
    return pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: an SQLite file of the test's own, or a clean PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'refunds.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def figures(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Record a line of figures (counts a run printed) for a `figures` section at the end of the test output."""
    return functools.partial(printed.record, pytestconfig, "figures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    printed.print_all(terminalreporter, config)
