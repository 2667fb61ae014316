"""Refunds a platform's webhooks missed are stored by the poller, once, like webhook refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from refund_adapter.config import parse_config
from refund_adapter.engine.platform_poller import PlatformPoller
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.models import RefundRequest, RefundState
from refund_adapter.plugins import create_plugin_manager
from refund_adapter.store import RefundStore, store_from_url


def _request(refund_id: str, amount: str = "5.00") -> RefundRequest:
    return RefundRequest("acme", "s1", refund_id, "o1", "2026112500000001", Decimal(amount), "CNY", "r", "main")


class MissedWebhooks:
    """A platform whose API lists refunds; the first call fails like a flaky API."""

    name = "acme"

    def __init__(self) -> None:
        self.calls: list[datetime | None] = []

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        self.calls.append(since)
        if len(self.calls) == 1:
            raise ConnectionError("API down")
        return [_request("r1"), _request("r1"), _request("bad", amount="0")]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RefundStore]:
    opened = store_from_url(f"sqlite:///{tmp_path / 'r.db'}")
    await opened.open()
    yield opened
    await opened.close()


def _context(store: RefundStore, platform: object) -> EngineContext:
    config = parse_config({"server": {"public_url": "http://127.0.0.1:1"},
                           "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}}}, env={})
    return EngineContext(config, store, {}, {"acme": platform}, create_plugin_manager(load_entry_points=False),  # type: ignore[dict-item]
                         clock=lambda: 1_780_000_000.0)


async def test_missed_refunds_are_stored_once_and_invalid_ones_skipped(store: RefundStore) -> None:
    platform = MissedWebhooks()
    ctx = _context(store, platform)
    poller = PlatformPoller(ctx)
    await poller.poll_once()  # the API fails: nothing stored, no cursor advanced
    assert (await store.counts())["refunds"] == {}
    assert "acme" not in poller.last_success
    await poller.poll_once()
    await poller.poll_once()
    stored = await store.list_refunds()
    assert [(r.request.platform_refund_id, r.state) for r in stored] == [("r1", RefundState.RECEIVED)]
    assert platform.calls[1] is None and platform.calls[2] is not None  # the cursor moves after a success
    assert ctx.signals.batcher.is_set()


class ChangedRefund:
    """A platform whose API lists a known refund with another amount than its webhook said."""

    name = "acme"

    async def reconcile(self, since: datetime | None) -> Sequence[RefundRequest]:
        return [_request("r1", amount="6.00")]


async def test_a_polled_refund_conflicting_with_the_stored_one_is_a_counted_warning_and_changes_nothing(
    store: RefundStore, caplog: pytest.LogCaptureFixture
) -> None:
    (stored,) = await store.accept([_request("r1")], 1_780_000_000.0)
    ctx = _context(store, ChangedRefund())
    await PlatformPoller(ctx).poll_once()
    assert await store.list_refunds() == [stored.refund]
    sample = ctx.metrics.registry.get_sample_value("refund_adapter_refund_conflicts_total", {"platform": "acme"})
    assert sample == 1
    assert [r.levelname for r in caplog.records if "conflicts with stored refund" in r.getMessage()] == ["WARNING"]
