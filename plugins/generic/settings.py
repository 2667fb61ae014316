"""The `platforms.generic` section, validated by the plugin that owns it.

Every problem is collected with its dotted path and raised together as the core's `ConfigError`, so
`check-config` shows the operator everything to fix at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from refund_adapter.plugin_api import check_section, parse_shops, raise_problems

from .standard_webhooks import DEFAULT_TOLERANCE_SECONDS, decode_secret

# Shop ids are the last segment of /webhooks/generic/{shop_id}: keep them URL-safe.
_SHOP_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECTION_KEYS = frozenset({"shops", "tolerance_seconds"})
_SHOP_KEYS = frozenset({"id", "secret", "callback_url", "alipay_account"})


@dataclass(frozen=True)
class GenericShop:
    id: str
    callback_url: str
    alipay_account: str
    secret: str = field(repr=False)  # whsec_...: verifies inbound webhooks and signs our callbacks


@dataclass(frozen=True)
class GenericSettings:
    shops: Mapping[str, GenericShop]
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS


def parse_settings(section: Any, path: str = "platforms.generic") -> GenericSettings:
    """Typed settings from the raw YAML section, or `ConfigError` listing every problem."""
    problems = check_section(section, path, _SECTION_KEYS)
    tolerance = _tolerance(section.get("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS), path, problems)
    shops = parse_shops(section, path, problems, shop_keys=_SHOP_KEYS, parse_shop=_shop, key=lambda shop: shop.id,
                        duplicate=lambda shop_id: f"id: duplicate shop id {shop_id!r}")
    raise_problems(problems)
    return GenericSettings(shops=shops, tolerance_seconds=tolerance)


def _tolerance(value: Any, path: str, problems: list[str]) -> int:
    # A value from ${ENV} arrives as a string.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{path}.tolerance_seconds: must be a positive whole number of seconds")
        return DEFAULT_TOLERANCE_SECONDS
    return value


def _shop(raw: Mapping[str, Any], path: str, problems: list[str]) -> GenericShop | None:
    values: dict[str, str] = {}
    for key in sorted(_SHOP_KEYS):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{path}.{key}: missing")
        else:
            values[key] = value
    if "id" in values and not _SHOP_ID.fullmatch(values["id"]):
        problems.append(f"{path}.id: use 1-64 letters, digits, '.', '_' or '-' (it is part of the webhook URL)")
    if "secret" in values:
        try:
            decode_secret(values["secret"])
        except ValueError as exc:
            problems.append(f"{path}.secret: {exc}")
    if "callback_url" in values and not _is_http_url(values["callback_url"]):
        problems.append(f"{path}.callback_url: must be an http(s) URL")
    if problems:
        return None
    return GenericShop(**values)


def _is_http_url(value: str) -> bool:
    try:
        url = urlsplit(value)
        return url.scheme in ("http", "https") and bool(url.hostname)
    except ValueError:  # an unbalanced [ipv6] or a bad port
        return False
