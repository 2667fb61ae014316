"""Fixtures of the Saleor tests: a fake Saleor served on 127.0.0.1 and the plugin's adapter configured for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from refund_adapter_saleor import SaleorPlatform
from refund_adapter_saleor.settings import parse_settings

from .fake_saleor import FakeSaleor, section


class Clock:
    """A monotonic clock the test moves: the keys' cache ages only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeSaleor]:
    saleor = FakeSaleor()
    async with saleor.running():
        yield saleor
    assert saleor.violations == []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def platform(fake: FakeSaleor, http: aiohttp.ClientSession, clock: Clock) -> SaleorPlatform:
    return SaleorPlatform(parse_settings(section(fake)), http, clock)
