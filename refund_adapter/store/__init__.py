"""The refund store: one async interface (`RefundStore`), SQLite and PostgreSQL backends."""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import EXCEEDS_PAID_AMOUNT, AcceptResult, PendingWork, RefundStore, StateChange

__all__ = ["EXCEEDS_PAID_AMOUNT", "AcceptResult", "PendingWork", "RefundStore", "StateChange", "store_from_url"]


def store_from_url(url: str) -> RefundStore:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite:///:memory:` or `postgresql://...`."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store url scheme: {scheme!r}")
