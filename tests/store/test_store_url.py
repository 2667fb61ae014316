"""`store.url` means what the operator reads in it."""

from __future__ import annotations

import pytest

from refund_adapter.store import store_from_url
from refund_adapter.store.sqlite import SqliteStore


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/refund-adapter/refunds.db", "/var/lib/refund-adapter/refunds.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls_name_absolute_paths(url: str, path: str) -> None:
    store = store_from_url(url)
    assert isinstance(store, SqliteStore) and store.path == path


def test_other_schemes_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'mysql'"):
        store_from_url("mysql://localhost/refunds")
