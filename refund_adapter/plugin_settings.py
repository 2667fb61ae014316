"""Helpers for plugins that validate their own `platforms.<name>` section.

The sections share one layout: a mapping with a non-empty `shops` list, each shop a mapping whose keys the
plugin knows and whose id is unique. Every problem is collected with its dotted path and raised together as
the core's `ConfigError`, so `check-config` shows the operator everything to fix at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .config_error import ConfigError

__all__ = [
    "ConfigError",
    "check_section",
    "parse_shops",
    "positive_seconds",
    "raise_problems",
    "required_text",
]

S = TypeVar("S")

# (raw shop mapping, its dotted path, the shop's own problem list) -> the shop, or None when it has problems.
ShopParser = Callable[[Mapping[str, Any], str, list[str]], S | None]


def check_section(section: Any, path: str, known_keys: Iterable[str]) -> list[str]:
    """The problems of the section's own keys; `ConfigError` at once when the section is not a mapping."""
    if not isinstance(section, Mapping):
        raise ConfigError([f"{path}: must be a mapping"])
    return _unknown(section, path, frozenset(known_keys))


def parse_shops(
    section: Mapping[str, Any],
    path: str,
    problems: list[str],
    *,
    shop_keys: Iterable[str],
    parse_shop: ShopParser[S],
    key: Callable[[S], str],
    duplicate: Callable[[str], str],
) -> dict[str, S]:
    """The section's valid shops by `key`, each problem appended to `problems`.

    `parse_shop` gets a shop that is a mapping and a fresh list already holding its unknown keys: it adds what
    else is wrong and returns None when that list is not empty. `duplicate(key)` words a repeated key as
    `"<field>: <message>"`, reported under the later shop's path.
    """
    known = frozenset(shop_keys)
    raw_shops = section.get("shops")
    if not isinstance(raw_shops, list) or not raw_shops:
        problems.append(f"{path}.shops: must list at least one shop")
        raw_shops = []
    shops: dict[str, S] = {}
    for index, raw in enumerate(raw_shops):
        shop_path = f"{path}.shops[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{shop_path}: must be a mapping")
            continue
        shop_problems = _unknown(raw, shop_path, known)
        shop = parse_shop(raw, shop_path, shop_problems)
        problems += shop_problems
        if shop is None or shop_problems:
            continue
        shop_key = key(shop)
        if shop_key in shops:
            problems.append(f"{shop_path}.{duplicate(shop_key)}")
        shops[shop_key] = shop
    return shops


def raise_problems(problems: list[str]) -> None:
    """`ConfigError` listing every problem, if there is any."""
    if problems:
        raise ConfigError(problems)


def required_text(raw: Mapping[str, Any], keys: Iterable[str], path: str, problems: list[str]) -> dict[str, str]:
    """The non-blank string settings among `keys`, stripped; each missing or blank one is a problem."""
    text: dict[str, str] = {}
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            text[key] = value.strip()
        else:
            problems.append(f"{path}.{key}: missing")
    return text


def positive_seconds(value: Any) -> float | None:
    """A finite number of seconds > 0, or None. A value from ${ENV} arrives as a string."""
    try:
        seconds = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < float("inf") else None


def _unknown(raw: Mapping[str, Any], path: str, known: frozenset[str]) -> list[str]:
    return [f"{path}.{key}: unknown setting" for key in raw if key not in known]
