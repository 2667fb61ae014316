"""The store under test, on each backend in turn (`store_url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from refund_adapter.store import RefundStore, store_from_url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RefundStore]:
    opened = store_from_url(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
