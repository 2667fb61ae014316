"""The kit's pytest fixtures, registered as a pytest plugin (`[project.entry-points.pytest11]`): installing
refund-adapter makes them available to a plugin's tests with no conftest.

Importing this module stays cheap (the sandbox and the app are imported when a fixture runs), since pytest loads
it in every session of an environment where refund-adapter is installed. Names are prefixed enough not to clash
with a project's own fixtures (`running_sandbox`, `serve_adapter`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # the session still starts; only these async fixtures need pytest-asyncio
    async_fixture = pytest.fixture

if TYPE_CHECKING:
    from ..sandbox import RunningSandbox
    from .loop import AdapterLoop

AdapterFactory = Callable[..., contextlib.AbstractAsyncContextManager["AdapterLoop"]]


@async_fixture
async def running_sandbox() -> AsyncIterator[RunningSandbox]:
    """The Alipay sandbox on 127.0.0.1 (`refund_adapter.testing.sandbox_config()`); seed trades with `seed_trade`."""
    from ..sandbox import run_sandbox
    from .sandbox import sandbox_config

    async with run_sandbox(sandbox_config()) as sandbox:
        yield sandbox


@pytest.fixture
def serve_adapter(running_sandbox: RunningSandbox, tmp_path: Path) -> AdapterFactory:
    """A factory: `async with serve_adapter({"acme": section}) as adapter:` serves the adapter with those platforms
    in front of `running_sandbox`, with an SQLite store under the test's `tmp_path` (or `store_url=...`)."""
    from .adapter import running_adapter

    def start(platforms: Mapping[str, Any], **options: Any) -> contextlib.AbstractAsyncContextManager[AdapterLoop]:
        return running_adapter(running_sandbox, platforms, tmp_path, **options)

    return start
