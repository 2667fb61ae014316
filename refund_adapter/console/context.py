"""What a command needs from its `--config`: the configuration and the store it names. Shared by the built-in
commands and the commands plugins add (`register_commands`), without importing the command line itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")


def load_config_or_exit(config_path: str) -> Any:
    """The configuration, or every problem on stderr and exit 2 (for plugin commands too)."""
    from ..config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise SystemExit(2) from None


async def with_store(config_path: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the configured store, `await work(store)`, close it: for commands that read or fix state."""
    from ..store import store_from_url

    store = store_from_url(load_config_or_exit(config_path).store.url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()
