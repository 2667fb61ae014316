"""`platforms.saleor` validated by the plugin: every problem at once, each with its path."""

from __future__ import annotations

from typing import Any

import pytest
from refund_adapter_saleor.settings import parse_settings, shop_id

from refund_adapter.plugin_api import ConfigError


def shop(**overrides: Any) -> dict[str, Any]:
    return {"api_url": "https://Shop.Example/graphql/", "app_token": "token", "alipay_account": "main"} | overrides


def test_a_shop_is_known_by_its_api_url_and_its_keys_are_at_its_origin() -> None:
    settings = parse_settings({"shops": [shop()]})
    (only,) = settings.shops.values()
    assert only.id == "https://shop.example/graphql"
    assert only.api_url == "https://Shop.Example/graphql/"  # reported to as written
    assert only.jwks_url == "https://shop.example/.well-known/jwks.json"
    assert only.secret_key is None
    assert settings.jwks_max_age_seconds == 600 and settings.jwks_min_refetch_seconds == 10
    assert "token" not in repr(only)


def test_the_optional_settings_are_read() -> None:
    settings = parse_settings({"jwks_max_age_seconds": "60", "jwks_min_refetch_seconds": 1, "shops": [
        shop(secret_key=" hmac-secret ", jwks_url="http://127.0.0.1:8000/keys.json")]})
    (only,) = settings.shops.values()
    assert (only.secret_key, only.jwks_url) == ("hmac-secret", "http://127.0.0.1:8000/keys.json")
    assert (settings.jwks_max_age_seconds, settings.jwks_min_refetch_seconds) == (60.0, 1.0)


def test_every_problem_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings({"jwks_max_age_seconds": 0, "colour": "red", "shops": [
            shop(api_url="ftp://shop.example/graphql/", app_token=" ", secret_key="", jwks_url="keys.json", x=1),
            shop(), shop(api_url="https://shop.example/graphql"),
        ]})
    assert sorted(raised.value.problems) == sorted([
        "platforms.saleor.colour: unknown setting",
        "platforms.saleor.jwks_max_age_seconds: must be a number of seconds > 0",
        "platforms.saleor.shops[0].x: unknown setting",
        "platforms.saleor.shops[0].app_token: missing",
        "platforms.saleor.shops[0].api_url: must be the instance's http(s) GraphQL URL, e.g. https://shop.example/graphql/",
        "platforms.saleor.shops[0].jwks_url: must be an http(s) URL",
        "platforms.saleor.shops[0].secret_key: must be the webhook's secret key, or left out",
        "platforms.saleor.shops[2].api_url: the Saleor instance 'https://shop.example/graphql' is listed twice",
    ])


@pytest.mark.parametrize("section", [None, [], {"shops": []}], ids=["none", "list", "no-shops"])
def test_a_section_without_shops_is_refused(section: Any) -> None:
    with pytest.raises(ConfigError):
        parse_settings(section)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://shop.example/graphql/", "https://shop.example/graphql"),
        (" HTTPS://SHOP.example:8443/graphql ", "https://shop.example:8443/graphql"),
        ("http://127.0.0.1:8000/graphql/", "http://127.0.0.1:8000/graphql"),
        ("https://shop.example/graphql/?q=1", None),
        ("shop.example/graphql/", None),
        ("https://[::1/graphql/", None),
        (None, None),
    ],
)
def test_shop_id(url: str | None, key: str | None) -> None:
    assert shop_id(url) == key
