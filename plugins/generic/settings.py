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

from refund_adapter.config import ConfigError

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
    problems: list[str] = []
    if not isinstance(section, Mapping):
        raise ConfigError([f"{path}: must be a mapping"])
    problems += [f"{path}.{key}: unknown setting" for key in section if key not in _SECTION_KEYS]
    tolerance = _tolerance(section.get("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS), path, problems)
    raw_shops = section.get("shops")
    if not isinstance(raw_shops, list) or not raw_shops:
        problems.append(f"{path}.shops: must list at least one shop")
        raw_shops = []
    shops: dict[str, GenericShop] = {}
    for index, raw in enumerate(raw_shops):
        shop = _shop(raw, f"{path}.shops[{index}]", problems)
        if shop is None:
            continue
        if shop.id in shops:
            problems.append(f"{path}.shops[{index}].id: duplicate shop id {shop.id!r}")
        shops[shop.id] = shop
    if problems:
        raise ConfigError(problems)
    return GenericSettings(shops=shops, tolerance_seconds=tolerance)


def _tolerance(value: Any, path: str, problems: list[str]) -> int:
    # A value from ${ENV} arrives as a string.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{path}.tolerance_seconds: must be a positive whole number of seconds")
        return DEFAULT_TOLERANCE_SECONDS
    return value


def _shop(raw: Any, path: str, problems: list[str]) -> GenericShop | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping")
        return None
    before = len(problems)
    problems += [f"{path}.{key}: unknown setting" for key in raw if key not in _SHOP_KEYS]
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
    if len(problems) > before:
        return None
    return GenericShop(**values)


def _is_http_url(value: str) -> bool:
    try:
        url = urlsplit(value)
        return url.scheme in ("http", "https") and bool(url.hostname)
    except ValueError:  # an unbalanced [ipv6] or a bad port
        return False
