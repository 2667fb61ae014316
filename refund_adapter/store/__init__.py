"""The refund store: one async interface (`RefundStore`), SQLite and PostgreSQL backends."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .base import (
    EXCEEDS_PAID_AMOUNT,
    AcceptResult,
    Anomaly,
    ApprovalQueue,
    BatchOverview,
    Cause,
    JournalEntry,
    PendingWork,
    RecordedResults,
    RefundFilter,
    RefundPage,
    RefundStore,
    StateChange,
    StateChanges,
    StoreUnavailable,
    Summary,
    any_final,
)

if TYPE_CHECKING:
    from .sqlite import Role

__all__ = ["EXCEEDS_PAID_AMOUNT", "AcceptResult", "Anomaly", "ApprovalQueue", "BatchOverview", "Cause", "JournalEntry",
           "PendingWork", "RecordedResults", "RefundFilter", "RefundPage", "RefundStore", "StateChange",
           "StateChanges", "StoreUnavailable", "Summary", "any_final", "store_from_url"]


def store_from_url(url: str, *, read_only: bool = False, role: Role = "all") -> RefundStore:
    """`sqlite:///var/lib/refunds.db` (the URL's path: absolute), `sqlite:///:memory:` or `postgresql://...`.

    `read_only`: a reader beside the running service (the operator's commands): it neither locks nor migrates,
    and every write raises. `role`: `serve`'s web or engine process, when the engine runs in its own (SQLite
    locks and waits accordingly: store/sqlite.py; PostgreSQL serves several instances anyway)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from .sqlite import ReadOnlySqliteStore, SqliteStore

        path = ":memory:" if parts.path == "/:memory:" else parts.path
        return ReadOnlySqliteStore(path) if read_only else SqliteStore(path, role)
    if parts.scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore, ReadOnlyPostgresStore

        return ReadOnlyPostgresStore(url) if read_only else PostgresStore(url)
    raise ValueError(f"unsupported store url scheme: {parts.scheme!r}")
