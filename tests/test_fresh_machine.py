"""The README's test command on a fresh machine: PostgreSQL installed but not running, or not installed at all.

Each case runs a small pytest session in a subprocess. Where it needs 127.0.0.1:5432 to be silent, the session
runs in a network namespace of its own (`unshare -n`), so the shared server is neither stopped nor reached.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from refund_adapter.store import store_from_url
from refund_adapter.testing import free_port

from .conftest import NO_PG, PG_ENV
from .private_postgres import BIN_ENV, find_bin_dir

ROOT = Path(__file__).resolve().parents[1]
INNER = f"{Path(__file__).relative_to(ROOT)}::test_a_store_keeps_what_it_is_given"
PRIVATE_NOTE = re.compile(r"private server from \S+ at 127\.0\.0\.1:\d+ in (\S+) \(removed at the end\)")

Session = Callable[..., subprocess.CompletedProcess[str]]


async def test_a_store_keeps_what_it_is_given(store_url: str) -> None:
    """The case the sessions below run, on each backend."""
    store = store_from_url(store_url)
    await store.open()
    try:
        await store.plugin_data_put("fresh", {"machine": "yes"}, now=0.0)
        assert await store.plugin_data_get("fresh", "machine") == "yes"
    finally:
        await store.close()


def _session(args: list[str], env: dict[str, str], wrapper: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`python -m pytest -q ARGS` from the repository, as the README runs it, behind `wrapper`, without
    REFUND_ADAPTER_TEST_PG unless `env` sets it."""
    command = [*wrapper, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    environ = {key: value for key, value in os.environ.items() if key != PG_ENV} | env
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def fresh_machine() -> Session:
    """A pytest session on a machine where nothing answers at 127.0.0.1:5432 (needs root for `unshare -n`)."""
    unshare, ip, sh = (shutil.which(tool) for tool in ("unshare", "ip", "sh"))
    if not (unshare and ip and sh) or subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"],
                                                     capture_output=True, check=False).returncode != 0:
        pytest.skip("needs `unshare -n` (root) and `ip` to hide 127.0.0.1:5432 from a test session")
    # Absolute paths: a session may run with PATH stripped.
    wrapper = [unshare, "-n", sh, "-c", f'{ip} link set lo up && exec "$@"', sh]
    return lambda *args, **env: _session(list(args), env, wrapper)


def _postgres_processes_in(folder: str) -> list[str]:
    """Command lines of running processes that name `folder` (a server started with `-D folder/data`)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if folder in command:
            found.append(command)
    return found


def test_installed_but_not_running_runs_on_a_private_server_then_removes_it(fresh_machine: Session) -> None:
    if find_bin_dir() is None:
        pytest.skip("no PostgreSQL binaries here to start a private server from")
    done = fresh_machine(INNER)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "2 passed" in output, output
    note = PRIVATE_NOTE.search(output)
    assert note, output
    assert not Path(note[1]).exists(), f"the private server's folder is left behind: {note[1]}"
    assert not _postgres_processes_in(note[1]), "the private server still runs"


def test_a_sqlite_only_selection_starts_no_server(fresh_machine: Session) -> None:
    done = fresh_machine(INNER, "-k", "sqlite")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 1 deselected" in output, output
    assert "private server" not in output, output


def test_without_postgresql_binaries_its_cases_skip_with_one_line_on_how_to_enable_them(
    fresh_machine: Session, tmp_path: Path
) -> None:
    done = fresh_machine(INNER, **{BIN_ENV: str(tmp_path), "PATH": os.path.dirname(sys.executable)})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed, 1 skipped" in output, output
    assert [line for line in output.splitlines() if "PostgreSQL" in line] == [NO_PG], output


def test_a_configured_server_that_does_not_answer_fails_loudly() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    done = _session([INNER], {PG_ENV: dead})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "1 passed, 1 error" in output, output
    assert f"{PG_ENV} is set but its server does not let us in" in output, output
    assert "skipped" not in output and "private server" not in output, output
