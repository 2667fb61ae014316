"""Shared fixtures: a private PostgreSQL database per test run, created here and dropped at the end.

Where it lives: the server named by REFUND_ADAPTER_TEST_PG if set; else the one at 127.0.0.1:5432 if it lets
us in; else a private server started for the session from the installed binaries (tests/private_postgres.py);
else, with no PostgreSQL installed, the PostgreSQL cases skip and say how to enable them. Only a test that
uses PostgreSQL gets this far, so a SQLite-only selection starts nothing.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests import figures as printed
from tests.private_postgres import BIN_ENV, find_bin_dir, private_postgres

PG_ENV = "REFUND_ADAPTER_TEST_PG"
LOCAL_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"  # TCP only: a Unix socket may reach another server
CONNECT_TIMEOUT_S = 10
NO_PG = (
    "PostgreSQL cases skipped: nothing at 127.0.0.1:5432 and no PostgreSQL binaries; to run them, install PostgreSQL"
    f" (initdb and pg_ctl on PATH or in {BIN_ENV}), or set {PG_ENV}=postgresql://USER@HOST:PORT/DB"
)
PG_NOTE = pytest.StashKey[str]()


def _admin(sql: str, dsn: str) -> None:
    """Run SQL on a database from a thread of its own: fixtures here may be set up inside a running event loop."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


def _refusal(dsn: str) -> str | None:
    """Why `dsn` does not let us in, in one line; None when it does."""
    try:
        _admin("SELECT 1", dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


@pytest.fixture(scope="session")
def pg_admin_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server where this run may create a database (see the module docstring for which one)."""
    if configured := os.environ.get(PG_ENV):
        if refusal := _refusal(configured):
            pytest.fail(f"{PG_ENV} is set but its server does not let us in: {refusal}", pytrace=False)
        yield configured
        return
    if (local_refusal := _refusal(LOCAL_PG_DSN)) is None:
        yield LOCAL_PG_DSN
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        request.config.stash[PG_NOTE] = NO_PG
        pytest.skip(NO_PG)
    with private_postgres(bin_dir) as server:
        request.config.stash[PG_NOTE] = (
            f"PostgreSQL cases ran on a private server from {server.bin_dir} at 127.0.0.1:{server.port} "
            f"in {server.folder} (removed at the end); 127.0.0.1:5432 did not let us in ({local_refusal})"
        )
        yield server.admin_dsn


@pytest.fixture(scope="session")
def pg_database(pg_admin_dsn: str) -> Iterator[str]:
    """The DSN of a database that exists for this run only."""
    name = f"refund_adapter_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"', pg_admin_dsn)
    try:
        yield pg_admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', pg_admin_dsn)


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
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for a plugin under test, its calls bounded at 5 s."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


@pytest.fixture
def figures(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Record a line of figures (counts a run printed) for a `figures` section at the end of the test output."""
    return functools.partial(printed.record, pytestconfig, "figures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """One line on where the PostgreSQL cases ran or why they skipped (when it was not the usual server), then
    the figures tests recorded."""
    if note := config.stash.get(PG_NOTE, None):
        terminalreporter.write_line(note)
    printed.print_all(terminalreporter, config)
