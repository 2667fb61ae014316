"""`platforms.woocommerce` validation, the store key, and registration through the entry point."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from refund_adapter_woocommerce.adapter import WooCommercePlatform
from refund_adapter_woocommerce.settings import SIGNATURE_ALGORITHMS, WooShop, parse_settings, shop_id

from refund_adapter.config import ConfigError, parse_config
from refund_adapter.plugins import collect_platforms, create_plugin_manager

from .conftest import shop_section
from .fake_woocommerce import CONSUMER_SECRET, WEBHOOK_SECRET

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "woocommerce.fragment.yaml"


def problems(section: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(section)
    return caught.value.problems


def test_a_minimal_shop_gets_safe_defaults() -> None:
    section = shop_section("https://Shop.Example/")
    del section["shops"][0]["refunds_since"]
    (shop,) = parse_settings(section).shops.values()
    assert shop.id == "shop.example"
    assert shop.url == "https://Shop.Example"
    assert (shop.poll_interval_seconds, shop.auth, shop.signature_algorithm) == (300.0, "basic", "sha256")
    assert shop.refunds_since is None
    assert shop.alipay_gateway_ids == {"alipay", "wenprise_alipay"}
    assert CONSUMER_SECRET not in repr(shop) and WEBHOOK_SECRET not in repr(shop)


def test_values_from_the_environment_arrive_as_strings() -> None:
    section = shop_section("https://shop.example", poll_interval_seconds="60", auth="query",
                           signature_algorithm="sha1", refunds_since="2026-01-15T00:00:00+08:00")
    (shop,) = parse_settings(section).shops.values()
    assert (shop.poll_interval_seconds, shop.auth, shop.signature_algorithm) == (60.0, "query", "sha1")
    assert shop.refunds_since == datetime(2026, 1, 14, 16, tzinfo=UTC)


def test_every_problem_is_listed_by_its_path_at_once() -> None:
    section = shop_section(
        "ftp://shop.example", webhook_secret="", alipay_gateway_ids=[], auth="oauth", signature_algorithm="crc32",
        poll_interval_seconds=0, refunds_since="2026-01-15T00:00:00", colour="blue",
    )
    del section["shops"][0]["consumer_key"]
    path = "platforms.woocommerce.shops[0]"
    assert sorted(problems(section | {"extra": 1})) == sorted([
        "platforms.woocommerce.extra: unknown setting",
        f"{path}.colour: unknown setting",
        f"{path}.webhook_secret: missing",
        f"{path}.consumer_key: missing",
        f"{path}.url: must be the store's http(s) address, e.g. https://shop.example",
        f"{path}.alipay_gateway_ids: must list the payment method ids of your Alipay gateways, e.g. [alipay]",
        f"{path}.poll_interval_seconds: must be a number of seconds > 0",
        f"{path}.auth: must be one of basic, query",
        f"{path}.signature_algorithm: must be one of {', '.join(SIGNATURE_ALGORITHMS)}",
        f"{path}.refunds_since: must be an ISO 8601 date and time with its offset, e.g. 2026-01-15T00:00:00+08:00",
    ])


@pytest.mark.parametrize("section", [None, [], {"shops": []}, {"shops": "x"}, {"shops": [7]}])
def test_a_section_without_shops_is_refused(section: Any) -> None:
    assert problems(section)


def test_the_same_store_twice_is_refused() -> None:
    section = shop_section("https://shop.example")
    section["shops"].append({**section["shops"][0], "url": "http://SHOP.example/"})
    assert problems(section) == ["platforms.woocommerce.shops[1].url: the store 'shop.example' is listed twice"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/", "shop.example"),
        ("http://SHOP.example:80", "shop.example"),
        ("https://shop.example:443/", "shop.example"),
        ("https://example.com/store/", "example.com/store"),
        ("http://127.0.0.1:8081/", "127.0.0.1:8081"),
        ("ftp://shop.example/", None),
        ("shop.example", None),
        ("", None),
        ("https://[::1", None),
        ("https://shop.example:99999/", None),
    ],
)
def test_shop_id_normalises_the_webhook_source(url: str, expected: str | None) -> None:
    assert shop_id(url) == expected


def test_the_entry_point_registers_the_platform_only_when_configured() -> None:
    pm = create_plugin_manager()
    configured = collect_platforms(pm, SimpleNamespace(platforms={"woocommerce": shop_section("https://s.example")}),
                                   None)  # type: ignore[arg-type]
    assert isinstance(configured["woocommerce"], WooCommercePlatform)
    assert "woocommerce" not in collect_platforms(pm, SimpleNamespace(platforms={}), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        collect_platforms(pm, SimpleNamespace(platforms={"woocommerce": {"shops": []}}), None)  # type: ignore[arg-type]


def test_the_example_is_valid_and_documents_every_setting() -> None:
    text = EXAMPLE.read_text("utf-8")
    document = yaml.safe_load(text) | {
        "server": {"public_url": "https://refunds.example"},
        "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}},
    }
    env = {"WC_WEBHOOK_SECRET": "s", "WC_CONSUMER_KEY": "ck_1", "WC_CONSUMER_SECRET": "cs_1"}
    (shop,) = parse_settings(parse_config(document, env=env).platforms["woocommerce"]).shops.values()
    assert (shop.id, shop.consumer_secret) == ("shop.example", "cs_1")
    settings = [f.name for f in dataclasses.fields(WooShop) if f.name != "id"]
    assert [name for name in settings if f"{name}:" not in text] == []
