"""The `platforms.saleor` section, validated by the plugin that owns it.

A shop is one Saleor instance, known by the GraphQL API URL it sends in `Saleor-Api-Url` (its JWKS is served
from that URL's origin). Every problem is collected with its dotted path and raised together as the core's
`ConfigError`, so `check-config` shows the operator everything to fix at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from refund_adapter.plugin_api import check_section, parse_shops, positive_seconds, raise_problems, required_text

NAME = "saleor"  # the platform's name, its webhook path /webhooks/saleor and its config section
JWKS_PATH = "/.well-known/jwks.json"  # where Saleor serves the keys that sign its webhooks (saleor/urls.py)
DEFAULT_JWKS_MAX_AGE_SECONDS = 600.0  # a key Saleor withdraws stops verifying within this long
DEFAULT_JWKS_MIN_REFETCH_SECONDS = 10.0  # unknown `kid`s never make us fetch the keys more often than this
_REQUIRED_TEXT = ("api_url", "app_token", "alipay_account")
_SHOP_KEYS = frozenset({*_REQUIRED_TEXT, "secret_key", "jwks_url"})
_SECTION_KEYS = frozenset({"shops", "jwks_max_age_seconds", "jwks_min_refetch_seconds"})


@dataclass(frozen=True)
class SaleorShop:
    """One Saleor instance. `id` is its normalised API URL, the refunds' `shop`."""

    id: str
    api_url: str  # the GraphQL endpoint: transactionEventReport goes here
    jwks_url: str
    alipay_account: str
    app_token: str = field(repr=False)  # the app's auth token, received when the app was installed
    secret_key: str | None = field(default=None, repr=False)  # the webhook's secretKey: deprecated HMAC signatures


@dataclass(frozen=True)
class SaleorSettings:
    shops: Mapping[str, SaleorShop]  # by shop id
    jwks_max_age_seconds: float = DEFAULT_JWKS_MAX_AGE_SECONDS
    jwks_min_refetch_seconds: float = DEFAULT_JWKS_MIN_REFETCH_SECONDS


def shop_id(api_url: str | None) -> str | None:
    """The stable key of an instance from its API URL: scheme, lower-case host, port and path without the trailing
    slash (`https://shop.example/graphql/` -> `https://shop.example/graphql`); None unless it is an http(s) URL."""
    try:
        parts = urlsplit((api_url or "").strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # an unbalanced [ipv6] or a bad port
        return None
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment:
        return None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def parse_settings(section: Any, path: str = f"platforms.{NAME}") -> SaleorSettings:
    """Typed settings from the raw YAML section, or `ConfigError` listing every problem."""
    problems = check_section(section, path, _SECTION_KEYS)
    max_age = _seconds(section, "jwks_max_age_seconds", DEFAULT_JWKS_MAX_AGE_SECONDS, path, problems)
    refetch = _seconds(section, "jwks_min_refetch_seconds", DEFAULT_JWKS_MIN_REFETCH_SECONDS, path, problems)
    shops = parse_shops(section, path, problems, shop_keys=_SHOP_KEYS, parse_shop=_shop, key=lambda shop: shop.id,
                        duplicate=lambda key: f"api_url: the Saleor instance {key!r} is listed twice")
    raise_problems(problems)
    return SaleorSettings(shops=shops, jwks_max_age_seconds=max_age, jwks_min_refetch_seconds=refetch)


def _shop(raw: Mapping[str, Any], path: str, problems: list[str]) -> SaleorShop | None:
    text = required_text(raw, _REQUIRED_TEXT, path, problems)
    key = shop_id(text.get("api_url"))
    if "api_url" in text and key is None:
        problems.append(f"{path}.api_url: must be the instance's http(s) GraphQL URL, e.g. https://shop.example/graphql/")
    jwks_url = raw.get("jwks_url")
    if jwks_url is not None and (not isinstance(jwks_url, str) or shop_id(jwks_url) is None):
        problems.append(f"{path}.jwks_url: must be an http(s) URL")
    secret_key = raw.get("secret_key")
    if secret_key is not None and (not isinstance(secret_key, str) or not secret_key.strip()):
        problems.append(f"{path}.secret_key: must be the webhook's secret key, or left out")
    if problems or key is None:
        return None
    parts = urlsplit(key)
    return SaleorShop(
        id=key,
        api_url=text["api_url"],
        jwks_url=jwks_url.strip() if isinstance(jwks_url, str) else f"{parts.scheme}://{parts.netloc}{JWKS_PATH}",
        alipay_account=text["alipay_account"],
        app_token=text["app_token"],
        secret_key=secret_key.strip() if isinstance(secret_key, str) else None,
    )


def _seconds(section: Mapping[str, Any], key: str, default: float, path: str, problems: list[str]) -> float:
    seconds = positive_seconds(section.get(key, default))
    if seconds is None:
        problems.append(f"{path}.{key}: must be a number of seconds > 0")
        return default
    return seconds
