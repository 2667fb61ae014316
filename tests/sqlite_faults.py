"""Make SQLite's own COMMIT fail, for real, on a store's file: a deferred foreign key that a trigger breaks.

SQLite checks a DEFERRABLE INITIALLY DEFERRED constraint only at COMMIT, so every statement of the
transaction succeeds and the COMMIT itself raises (`FOREIGN KEY constraint failed`), leaving the transaction
open: exactly the case where the store must ROLLBACK before the writer can be used again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def commits_failing(db: Path, table: str, event: str = "INSERT") -> Iterator[None]:
    """While inside, every transaction that runs `event` on `table` fails at its COMMIT (needs foreign_keys=ON,
    which the store sets)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("CREATE TABLE commit_breaker (ref INTEGER REFERENCES batches(id) DEFERRABLE INITIALLY DEFERRED)")
        conn.execute(f"""CREATE TRIGGER break_commit AFTER {event} ON {table}
                         BEGIN INSERT INTO commit_breaker VALUES (-1); END""")
        yield
        conn.execute("DROP TRIGGER break_commit")
        conn.execute("DROP TABLE commit_breaker")
    finally:
        conn.close()
