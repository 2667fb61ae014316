"""A batch_no is dated on Alipay's clock (Beijing), whatever hour the suite runs: at 17:00 UTC it is
already tomorrow in Beijing, and Alipay refuses a batch_no not dated today."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from refund_adapter.channels.mapi.batch_no import batch_no_date
from refund_adapter.engine.batcher import batch_once

from .kit import Clock, driven_engine, request


@pytest.mark.parametrize(
    ("utc", "beijing_day"),
    [
        (datetime(2026, 11, 25, 15, 59, 59, tzinfo=UTC), "2026-11-25"),  # 23:59:59 in Beijing
        (datetime(2026, 11, 25, 16, 0, tzinfo=UTC), "2026-11-26"),  # Beijing midnight
        (datetime(2026, 11, 25, 17, 0, tzinfo=UTC), "2026-11-26"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "2027-01-01"),
    ],
)
async def test_batch_no_is_dated_in_beijing(tmp_path: Path, utc: datetime, beijing_day: str) -> None:
    clock = Clock(utc.timestamp())
    async with driven_engine(tmp_path, clock) as ctx:
        await ctx.store.accept([request()], clock.now - 60)  # waited long enough to be batched
        assert await batch_once(ctx)
        (batch,) = await ctx.store.list_batches()
    assert batch_no_date(batch.batch_no).isoformat() == beijing_day
