"""serve and demo run on uvloop where it is installed, and on asyncio's loop when asked to."""

from __future__ import annotations

import asyncio

import pytest

from refund_adapter.event_loop import new_event_loop, uvloop_available


def test_uvloop_when_installed_and_preferred() -> None:
    if not uvloop_available():
        pytest.skip("uvloop is not installed on this platform")
    import uvloop

    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_asyncio_loop_when_uvloop_is_not_wanted() -> None:
    loop = new_event_loop(prefer_uvloop=False)
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
