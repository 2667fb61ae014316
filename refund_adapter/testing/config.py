"""The raw configuration of an adapter under test: loopback, a SQLite store, one MD5 Alipay account, fast retries,
and a known admin token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

TEST_ADMIN_TOKEN = "test-admin-token-0123456789"  # local_config's server.admin_token: the operator's routes exist
ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}  # what a test sends to /-/... and /metrics


def with_admin_token(config: Config, token: str = TEST_ADMIN_TOKEN) -> Config:
    """`config` with `server.admin_token` set, for a config built elsewhere (the demo's) that a test queries."""
    from ..config import Secret

    return replace(config, server=replace(config.server, admin_token=Secret(token)))


def local_config(
    db_path: Path,
    port: int,
    *,
    partner: str,
    md5_key: str,
    gateway_url: str,
    platforms: Mapping[str, Any],
    server: Mapping[str, Any] | None = None,
    store_url: str | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The raw config of an adapter on 127.0.0.1:`port`: a SQLite store at `db_path` (or the store at `store_url`),
    one MD5 Alipay account `main` at `gateway_url`, batches and reports retried quickly, TEST_ADMIN_TOKEN as the
    admin token. `server` adds to (or overrides) the server section; `sections` are further top-level sections
    (`alipay_query`, ...)."""
    return {
        "server": {"host": "127.0.0.1", "port": port, "public_url": f"http://127.0.0.1:{port}",
                   "admin_token": TEST_ADMIN_TOKEN, **(server or {})},
        "store": {"url": store_url or f"sqlite:///{db_path}"},
        "alipay": {
            "accounts": {
                "main": {"partner": partner, "sign_type": "MD5", "md5_key": md5_key, "gateway_url": gateway_url}
            }
        },
        "batching": {"max_wait_seconds": 0.05},
        "reporter": {"base_delay_seconds": 0.05, "max_delay_seconds": 0.5},
        **sections,
        "platforms": platforms,
    }
