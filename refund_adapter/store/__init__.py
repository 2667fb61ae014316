"""The refund store: one async interface (`RefundStore`), SQLite and PostgreSQL backends."""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import (
    EXCEEDS_PAID_AMOUNT,
    AcceptResult,
    Anomaly,
    PendingWork,
    RecordedResults,
    RefundStore,
    StateChange,
    StoreUnavailable,
)

__all__ = ["EXCEEDS_PAID_AMOUNT", "AcceptResult", "Anomaly", "PendingWork", "RecordedResults", "RefundStore",
           "StateChange", "StoreUnavailable", "store_from_url"]


def store_from_url(url: str) -> RefundStore:
    """`sqlite:///var/lib/refunds.db` (the URL's path: absolute), `sqlite:///:memory:` or `postgresql://...`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore(":memory:" if parts.path == "/:memory:" else parts.path)
    if parts.scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store url scheme: {parts.scheme!r}")
