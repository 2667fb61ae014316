"""The operator's reader (`store_from_url(read_only=True)`) beside the service's writer, on both backends."""

from __future__ import annotations

from decimal import Decimal

import pytest

from refund_adapter.models import RefundRequest
from refund_adapter.store import StoreUnavailable, store_from_url


def _request(i: int) -> RefundRequest:
    return RefundRequest("generic", "s1", f"r{i}", f"o{i}", f"20261207{i:08d}", Decimal("1.00"), "CNY", "", "main")


async def test_a_reader_sees_every_commit_of_the_open_writer_and_cannot_write(store_url: str) -> None:
    writer = store_from_url(store_url)
    await writer.open()  # on SQLite it holds the file lock, as `serve` does
    try:
        await writer.accept([_request(1)], 1_780_000_000.0)
        reader = store_from_url(store_url, read_only=True)
        await reader.open()
        try:
            assert [r.request.platform_refund_id for r in await reader.list_refunds()] == ["r1"]
            await writer.accept([_request(2)], 1_780_000_001.0)
            assert [r.request.platform_refund_id for r in await reader.list_refunds()] == ["r2", "r1"]
            first = (await reader.list_refunds())[-1].id  # a bulk write too (one that has a row to write)
            for write in (reader.accept([_request(3)], 1_780_000_002.0), reader.retry_dead_letters(1.0, [first])):
                with pytest.raises(Exception):  # noqa: B017 - each backend refuses in its own words
                    await write
        finally:
            await reader.close()
        assert len(await writer.list_refunds()) == 2
    finally:
        await writer.close()


async def test_a_reader_refuses_a_store_that_was_never_set_up(store_url: str) -> None:
    reader = store_from_url(store_url, read_only=True)
    with pytest.raises(StoreUnavailable):
        await reader.open()
    await reader.close()
