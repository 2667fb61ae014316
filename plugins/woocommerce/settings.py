"""The `platforms.woocommerce` section, validated by the plugin that owns it.

Every problem is collected with its dotted path and raised together as the core's `ConfigError`, so
`check-config` shows the operator everything to fix at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from refund_adapter.plugin_api import check_section, parse_shops, positive_seconds, raise_problems, required_text

DEFAULT_POLL_INTERVAL_SECONDS = 300.0
AUTH_MODES = ("basic", "query")
# What WooCommerce's `woocommerce_webhook_hash_algorithm` filter can pick, in Python's spelling; shake_* has no HMAC.
SIGNATURE_ALGORITHMS = tuple(sorted(name for name in hashlib.algorithms_guaranteed if not name.startswith("shake")))
_SECTION_KEYS = frozenset({"shops"})
_REQUIRED_TEXT = ("url", "webhook_secret", "consumer_key", "consumer_secret", "alipay_account")
_SHOP_KEYS = frozenset(
    {*_REQUIRED_TEXT, "alipay_gateway_ids", "poll_interval_seconds", "auth", "signature_algorithm", "refunds_since"}
)


@dataclass(frozen=True)
class WooShop:
    """One WooCommerce store. `id` is its address without scheme or trailing slash, the refunds' `shop`."""

    id: str
    url: str  # the WordPress home URL, without the trailing slash
    alipay_gateway_ids: frozenset[str]
    alipay_account: str
    poll_interval_seconds: float
    auth: str  # "basic" (Authorization header) or "query" (consumer_key/consumer_secret in the query string)
    signature_algorithm: str
    refunds_since: datetime | None  # None: from the first time the adapter polled the shop
    webhook_secret: str = field(repr=False)
    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)


@dataclass(frozen=True)
class WooSettings:
    shops: Mapping[str, WooShop]  # by shop id


def shop_id(url: str) -> str | None:
    """The stable key of a store from its URL or X-WC-Webhook-Source: host[:port][/path], lower-case host.

    The scheme is left out because WordPress may announce http:// behind a TLS proxy; the signature, not the
    header, is what proves who sent a webhook.
    """
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # an unbalanced [ipv6] or a bad port
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    return netloc + parts.path.rstrip("/")


def parse_settings(section: Any, path: str = "platforms.woocommerce") -> WooSettings:
    """Typed settings from the raw YAML section, or `ConfigError` listing every problem."""
    problems = check_section(section, path, _SECTION_KEYS)
    shops = parse_shops(section, path, problems, shop_keys=_SHOP_KEYS, parse_shop=_shop, key=lambda shop: shop.id,
                        duplicate=lambda key: f"url: the store {key!r} is listed twice")
    raise_problems(problems)
    return WooSettings(shops=shops)


def _shop(raw: Mapping[str, Any], path: str, problems: list[str]) -> WooShop | None:
    text = required_text(raw, _REQUIRED_TEXT, path, problems)
    url = text.get("url", "")
    key = shop_id(url) if url else None
    if url and (key is None or urlsplit(url).query or urlsplit(url).fragment):
        problems.append(f"{path}.url: must be the store's http(s) address, e.g. https://shop.example")
    gateway_ids = _gateway_ids(raw.get("alipay_gateway_ids"), f"{path}.alipay_gateway_ids", problems)
    interval = _seconds(raw.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL_SECONDS), path, problems)
    auth = _choice(raw, "auth", AUTH_MODES, "basic", path, problems)
    algorithm = _choice(raw, "signature_algorithm", SIGNATURE_ALGORITHMS, "sha256", path, problems)
    since = _since(raw.get("refunds_since"), f"{path}.refunds_since", problems)
    if problems or key is None:
        return None
    return WooShop(
        id=key,
        url=url.rstrip("/"),
        alipay_gateway_ids=gateway_ids,
        alipay_account=text["alipay_account"],
        poll_interval_seconds=interval,
        auth=auth,
        signature_algorithm=algorithm,
        refunds_since=since,
        webhook_secret=text["webhook_secret"],
        consumer_key=text["consumer_key"],
        consumer_secret=text["consumer_secret"],
    )


def _gateway_ids(value: Any, path: str, problems: list[str]) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item.strip() for item in value):
        problems.append(f"{path}: must list the payment method ids of your Alipay gateways, e.g. [alipay]")
        return frozenset()
    return frozenset(item.strip() for item in value)


def _seconds(value: Any, path: str, problems: list[str]) -> float:
    seconds = positive_seconds(value)
    if seconds is None:
        problems.append(f"{path}.poll_interval_seconds: must be a number of seconds > 0")
        return DEFAULT_POLL_INTERVAL_SECONDS
    return seconds


def _choice(
    raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str, path: str, problems: list[str]
) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        problems.append(f"{path}.{key}: must be one of {', '.join(allowed)}")
        return default
    return str(value)


def _since(value: Any, path: str, problems: list[str]) -> datetime | None:
    """An ISO 8601 moment with its offset; YAML may already have read a timestamp into a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.tzinfo is None:
        problems.append(f"{path}: must be an ISO 8601 date and time with its offset, e.g. 2026-01-15T00:00:00+08:00")
        return None
    return value.astimezone(UTC)
