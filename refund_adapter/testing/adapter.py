"""An adapter under test: the app of a given `platforms` configuration with a store of its own, served on
127.0.0.1 in front of a running sandbox. What the `serve_adapter` fixture starts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import local_config
from .loop import AdapterLoop, adapter_loop
from .sandbox import SANDBOX_MD5_KEY, SANDBOX_PARTNER
from .servers import wait_until

if TYPE_CHECKING:
    import pluggy

    from ..sandbox import RunningSandbox

SETTLE_SECONDS = 30.0  # a start-up round that fails is tried again after platform_poll.interval_seconds (30 s)


@contextlib.asynccontextmanager
async def running_adapter(
    sandbox: RunningSandbox,
    platforms: Mapping[str, Any],
    folder: Path,
    *,
    store_url: str | None = None,
    pm: pluggy.PluginManager | None = None,
    **sections: Any,
) -> AsyncIterator[AdapterLoop]:
    """Serve the adapter configured with `platforms` (each platform's raw section) and Alipay account `main` at the
    kit's sandbox, storing in SQLite under `folder` (or at `store_url`: a PostgreSQL database of the suite's).
    `sections` are further top-level configuration sections (`alipay_query`, `reporter`...).

    It is yielded once every engine loop has gone round once, the start-up reconcile of each platform included:
    what a test then puts on a fake platform arrives by its webhook, not by a start-up poll racing the test."""
    from ..config import parse_config
    from ..web.keys import ENGINE

    def config(port: int, gateway_url: str, _shop_url: str) -> Any:
        raw = local_config(folder / "refunds.db", port, partner=SANDBOX_PARTNER, md5_key=SANDBOX_MD5_KEY,
                           gateway_url=gateway_url, platforms=platforms, store_url=store_url, **sections)
        return parse_config(raw, env={})

    async with adapter_loop(config, sandbox=sandbox, shop="", pm=pm) as adapter:
        loops = adapter.app[ENGINE].loops

        async def settled() -> bool:
            return loops.cycled()

        await wait_until(settled, within=SETTLE_SECONDS, what="the engine's start-up round")
        yield adapter
