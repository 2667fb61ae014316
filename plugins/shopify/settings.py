"""The `platforms.shopify` section, validated by the plugin that owns it.

Every problem is collected with its dotted path and raised together as the core's `ConfigError`, so
`check-config` shows the operator everything to fix at once (as the generic plugin does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from refund_adapter.plugin_api import check_section, parse_shops, positive_seconds, raise_problems, required_text

NAME = "shopify"  # the platform's name, its webhook path /webhooks/shopify and its config section
WEBHOOK = "webhook"  # observer mode: refunds/create webhooks, results written back as tags and metafields
PAYMENTS_APP = "payments_app"  # payment-provider mode: refund sessions, resolved or rejected
MODES = (WEBHOOK, PAYMENTS_APP)
DEFAULT_API_VERSION = "2025-07"
DEFAULT_POLL_INTERVAL_SECONDS = 300.0

_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+")
_API_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")
_SECTION_KEYS = frozenset({"shops", "client_cert_header"})
_SHOP_KEYS = frozenset(
    {
        "domain",
        "client_secrets",
        "access_token",
        "api_version",
        "alipay_account",
        "mode",
        "trade_no_source",
        "api_base_url",
        "poll_interval_seconds",
    }
)


@dataclass(frozen=True)
class TradeNoSource:
    """Where a shop's Alipay trade number lives on Shopify (observer mode); see `read_trade_no` in refunds.py.

    `authorization`: the refunded (parent) transaction's authorization code; `receipt:<path>`: a dotted path in
    that transaction's receipt JSON (`receipt:trade_no`, `receipt:payments.0.id`); `note_attribute:<name>`: the
    order's note attribute (checkout custom attribute) of that name.
    """

    kind: str
    argument: str = ""

    @classmethod
    def parse(cls, text: str) -> TradeNoSource:
        kind, colon, argument = text.partition(":")
        if kind == "authorization" and not colon:
            return cls(kind)
        if kind in ("receipt", "note_attribute") and argument.strip():
            return cls(kind, argument.strip())
        raise ValueError("must be authorization, receipt:<json.path> or note_attribute:<name>")

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind


@dataclass(frozen=True)
class ShopifyShop:
    domain: str  # the shop's myshopify.com domain, as Shopify sends it in X-Shopify-Shop-Domain
    alipay_account: str
    mode: str
    trade_no_source: TradeNoSource
    api_version: str
    api_base_url: str  # https://{domain} unless a test or a proxy says otherwise
    poll_interval_seconds: float
    access_token: str = field(repr=False)
    client_secrets: tuple[str, ...] = field(repr=False)  # any may sign webhooks: a rotation drops none

    @property
    def admin_graphql_url(self) -> str:
        return f"{self.api_base_url}/admin/api/{self.api_version}/graphql.json"

    @property
    def payments_graphql_url(self) -> str:
        return f"{self.api_base_url}/payments_apps/api/{self.api_version}/graphql.json"


@dataclass(frozen=True)
class ShopifySettings:
    shops: Mapping[str, ShopifyShop]  # by domain
    # Refund sessions carry no signature: Shopify authenticates them with mTLS, checked by the TLS terminator,
    # which must set this header to SUCCESS (nginx: $ssl_client_verify) on requests whose certificate it verified.
    client_cert_header: str | None = None


def parse_settings(section: Any, path: str = f"platforms.{NAME}") -> ShopifySettings:
    """Typed settings from the raw YAML section, or `ConfigError` listing every problem."""
    problems = check_section(section, path, _SECTION_KEYS)
    header = section.get("client_cert_header")
    if header is not None and (not isinstance(header, str) or not header.strip()):
        problems.append(f"{path}.client_cert_header: must be a header name")
        header = None
    shops = parse_shops(section, path, problems, shop_keys=_SHOP_KEYS, parse_shop=_shop, key=lambda shop: shop.domain,
                        duplicate=lambda domain: f"domain: duplicate shop {domain!r}")
    if header is None and any(shop.mode == PAYMENTS_APP for shop in shops.values()):
        problems.append(
            f"{path}.client_cert_header: required with a payments_app shop (the header your TLS terminator sets "
            "to SUCCESS once it verified Shopify's client certificate)"
        )
    raise_problems(problems)
    return ShopifySettings(shops=shops, client_cert_header=header.strip() if header else None)


def _shop(raw: Mapping[str, Any], path: str, problems: list[str]) -> ShopifyShop | None:
    text = required_text(raw, ("domain", "access_token", "alipay_account"), path, problems)
    domain = text.get("domain", "").lower()
    if domain and not _DOMAIN.fullmatch(domain):
        problems.append(f"{path}.domain: must be the shop's domain, e.g. example.myshopify.com")
    mode = raw.get("mode", WEBHOOK)
    if mode not in MODES:
        problems.append(f"{path}.mode: must be one of {', '.join(MODES)}")
    secrets = raw.get("client_secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
        problems.append(f"{path}.client_secrets: must be a list of non-empty strings")
        secrets = []
    elif mode == WEBHOOK and not secrets:
        problems.append(f"{path}.client_secrets: webhook mode needs the secret(s) that sign the shop's webhooks")
    api_version = raw.get("api_version", DEFAULT_API_VERSION)
    if not isinstance(api_version, str) or not _API_VERSION.fullmatch(api_version):
        problems.append(f"{path}.api_version: must be a Shopify API version such as {DEFAULT_API_VERSION}")
    source = TradeNoSource("authorization")
    try:
        source = TradeNoSource.parse(_str_or(raw.get("trade_no_source"), str(source)))
    except ValueError as exc:
        problems.append(f"{path}.trade_no_source: {exc}")
    base_url = _str_or(raw.get("api_base_url"), f"https://{domain}").rstrip("/")
    if not _is_http_url(base_url):
        problems.append(f"{path}.api_base_url: must be an http(s) URL")
    interval = positive_seconds(raw.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL_SECONDS))
    if interval is None:
        problems.append(f"{path}.poll_interval_seconds: must be a number of seconds > 0")
    if problems:
        return None
    return ShopifyShop(
        domain=domain,
        alipay_account=text["alipay_account"],
        mode=mode,
        trade_no_source=source,
        api_version=api_version,
        api_base_url=base_url,
        poll_interval_seconds=interval or DEFAULT_POLL_INTERVAL_SECONDS,
        access_token=text["access_token"],
        client_secrets=tuple(secrets),
    )


def _str_or(value: Any, default: str) -> str:
    """A string setting, the default when absent; a non-string is passed on to fail its own check."""
    return default if value is None else value if isinstance(value, str) else repr(value)


def _is_http_url(value: str) -> bool:
    try:
        url = URL(value)
    except ValueError:  # an unbalanced [ipv6], a bad port
        return False
    return url.scheme in ("http", "https") and bool(url.host)
