"""A throwaway PostgreSQL server for a test session on a machine where none is running.

Started from the installed binaries in a temporary folder, listening on a free port of 127.0.0.1 only (no Unix
socket) with trust authentication, and removed at the end. PostgreSQL refuses to run as root, so as root the
server runs as the `postgres` user (or `nobody`) in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refund_adapter.testing import free_port

BIN_ENV = "REFUND_ADAPTER_TEST_PG_BIN"
BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
TOOLS = ("initdb", "pg_ctl")
START_TIMEOUT_S = 120
# A server that lives for one test session: durability is worth nothing, speed is worth a lot.
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def _has_tools(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in TOOLS)


def _version(folder: str) -> tuple[int, ...]:
    """`/usr/lib/postgresql/16/bin` -> (16,): the newest installed major version is tried first."""
    return tuple(int(number) for number in re.findall(r"\d+", folder))


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: only REFUND_ADAPTER_TEST_PG_BIN if set, else PATH, else the
    usual package locations (Debian/Ubuntu put them outside PATH)."""
    if override := os.environ.get(BIN_ENV):
        candidates = [Path(override)]
    else:
        on_path = shutil.which("pg_ctl")
        candidates = [Path(on_path).resolve().parent] if on_path else []
        for pattern in BIN_GLOBS:
            candidates += [Path(found) for found in sorted(glob.glob(pattern), key=_version, reverse=True)]
    return next((folder for folder in candidates if _has_tools(folder)), None)


def _server_account() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as when we are root (which PostgreSQL refuses); None to run as ourselves."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd  # POSIX only, and only needed as root

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, and there is no `postgres` or `nobody` user to run PostgreSQL as")


@dataclass(frozen=True)
class PrivatePostgres:
    """A running private server: where it came from, where it lives, and how to reach it."""

    bin_dir: Path
    folder: Path
    port: int

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


class _Tools:
    """Runs the PostgreSQL tools as the account the server belongs to, with no PG* variable steering them."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.account = _server_account()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}

    def run(self, tool: str, *args: str | Path) -> None:
        as_account: dict[str, Any] = {}
        if self.account is not None:
            uid, gid = self.account
            as_account = {"user": uid, "group": gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin_dir / tool), *map(str, args)],
            cwd=self.folder, env=self.env, capture_output=True, text=True, check=False, **as_account,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(map(str, args))} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        log = self.folder / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def give_folder(self) -> None:
        if self.account is not None:
            os.chown(self.folder, *self.account)


@contextlib.contextmanager
def private_postgres(bin_dir: Path) -> Iterator[PrivatePostgres]:
    """A fresh cluster started from `bin_dir`, stopped and deleted when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="refund-adapter-pg-"))
    try:
        tools = _Tools(bin_dir, folder)
        tools.give_folder()
        data = folder / "data"
        tools.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        port = free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(port=port))
        tools.run("pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", str(START_TIMEOUT_S), "start")
        try:
            yield PrivatePostgres(bin_dir, folder, port)
        finally:
            tools.run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
