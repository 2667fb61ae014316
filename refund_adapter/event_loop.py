"""The event loop `serve` and `demo` run on: uvloop where it is installed (a dependency on Linux and macOS).

uvloop's transports, callbacks and timers are compiled: measured with `bench/ab.py` (26 November), `serve` spent
0.93 of the CPU per webhook it spent on asyncio's own loop and acknowledged 1.07 times as many webhooks a second.
`server.uvloop: false` keeps the standard loop (to rule it out while debugging, say).
"""

from __future__ import annotations

import asyncio
import importlib.util


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def new_event_loop(prefer_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A new loop: uvloop's when preferred and installed, otherwise asyncio's."""
    if prefer_uvloop and uvloop_available():
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
