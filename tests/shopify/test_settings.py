"""`platforms.shopify`: every problem named by its path, sensible defaults, secrets out of reprs; registration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import yaml
from click.testing import CliRunner
from refund_adapter_shopify.adapter import ShopifyPlatform
from refund_adapter_shopify.settings import DEFAULT_API_VERSION, ShopifyShop, TradeNoSource, parse_settings

from refund_adapter import ShopInfo
from refund_adapter.cli import main
from refund_adapter.config import ConfigError, parse_config
from refund_adapter.plugins import collect_platforms, create_plugin_manager

from .fake_shopify import DOMAIN, SECRET, TOKEN


def test_defaults() -> None:
    settings = parse_settings({"shops": [{"domain": "Alipay-Test.myshopify.com", "client_secrets": [SECRET],
                                          "access_token": TOKEN, "alipay_account": "main"}]})
    assert settings.shops == {
        DOMAIN: ShopifyShop(
            domain=DOMAIN, alipay_account="main", mode="webhook", trade_no_source=TradeNoSource("authorization"),
            api_version=DEFAULT_API_VERSION, api_base_url=f"https://{DOMAIN}", poll_interval_seconds=300,
            access_token=TOKEN, client_secrets=(SECRET,),
        )
    }
    assert settings.client_cert_header is None
    shop = settings.shops[DOMAIN]
    assert shop.admin_graphql_url == f"https://{DOMAIN}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
    assert shop.payments_graphql_url == f"https://{DOMAIN}/payments_apps/api/{DEFAULT_API_VERSION}/graphql.json"
    assert SECRET not in repr(settings) and TOKEN not in repr(settings)


def test_every_option() -> None:
    settings = parse_settings({
        "client_cert_header": "X-Client-Verify",
        "shops": [{"domain": DOMAIN, "access_token": TOKEN, "alipay_account": "main", "mode": "payments_app",
                   "trade_no_source": "note_attribute:alipay_trade_no", "api_version": "unstable",
                   "api_base_url": "http://127.0.0.1:9000/", "poll_interval_seconds": "60"}],
    })
    shop = settings.shops[DOMAIN]
    assert (shop.mode, str(shop.trade_no_source), shop.api_version, shop.poll_interval_seconds) == (
        "payments_app", "note_attribute:alipay_trade_no", "unstable", 60)
    assert shop.admin_graphql_url == "http://127.0.0.1:9000/admin/api/unstable/graphql.json"
    assert shop.client_secrets == ()


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({
            "secret": "x",
            "client_cert_header": "",
            "shops": [
                {"domain": "not a domain", "client_secrets": "one-secret", "access_token": TOKEN,
                 "alipay_account": "main", "mode": "observer", "api_version": "2025-02",
                 "trade_no_source": "receipt:", "api_base_url": "ftp://x", "poll_interval_seconds": 0, "x": 1},
                {"domain": DOMAIN, "alipay_account": "main", "mode": "payments_app"},
                {"domain": DOMAIN, "access_token": TOKEN, "alipay_account": "main"},
                "a string",
            ],
        })
    assert caught.value.problems == [
        "platforms.shopify.secret: unknown setting",
        "platforms.shopify.client_cert_header: must be a header name",
        "platforms.shopify.shops[0].x: unknown setting",
        "platforms.shopify.shops[0].domain: must be the shop's domain, e.g. example.myshopify.com",
        "platforms.shopify.shops[0].mode: must be one of webhook, payments_app",
        "platforms.shopify.shops[0].client_secrets: must be a list of non-empty strings",
        f"platforms.shopify.shops[0].api_version: must be a Shopify API version such as {DEFAULT_API_VERSION}",
        "platforms.shopify.shops[0].trade_no_source: must be authorization, receipt:<json.path> or "
        "note_attribute:<name>",
        "platforms.shopify.shops[0].api_base_url: must be an http(s) URL",
        "platforms.shopify.shops[0].poll_interval_seconds: must be a number of seconds > 0",
        "platforms.shopify.shops[1].access_token: missing",
        "platforms.shopify.shops[2].client_secrets: webhook mode needs the secret(s) that sign the shop's webhooks",
        "platforms.shopify.shops[3]: must be a mapping",
    ]


def test_a_payments_app_shop_needs_the_client_certificate_header() -> None:
    with pytest.raises(ConfigError, match=r"client_cert_header: required with a payments_app shop"):
        parse_settings({"shops": [{"domain": DOMAIN, "access_token": TOKEN, "alipay_account": "main",
                                   "mode": "payments_app"}]})


@pytest.mark.parametrize("section", [None, [], {"shops": []}, {"shops": "x"}])
def test_the_section_must_list_shops(section: object) -> None:
    with pytest.raises(ConfigError):
        parse_settings(section)


async def test_registered_through_the_entry_point_only_when_configured() -> None:
    pm = create_plugin_manager()
    async with aiohttp.ClientSession() as http:
        assert "shopify" not in collect_platforms(pm, SimpleNamespace(platforms={}), http)
        section = {"shops": [{"domain": DOMAIN, "client_secrets": [SECRET], "access_token": TOKEN,
                              "alipay_account": "main"}]}
        platform = collect_platforms(pm, SimpleNamespace(platforms={"shopify": section}), http)["shopify"]
    assert isinstance(platform, ShopifyPlatform)
    assert platform.shops() == [ShopInfo(DOMAIN, "main", {
        "mode": "webhook", "trade_no_source": "authorization", "api_url": f"https://{DOMAIN}"})]


def test_check_config_shows_the_sections_problems(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://refunds.example.com"},
        "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}},
        "platforms": {"shopify": {"shops": [{"domain": DOMAIN, "alipay_account": "main"}]}},
    }), "utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "platforms.shopify.shops[0].access_token: missing" in result.output


def test_the_example_section_is_valid() -> None:
    example = yaml.safe_load((Path(__file__).parents[2] / "config" / "shopify.fragment.yaml").read_text("utf-8"))
    config = parse_config(
        {"server": {"public_url": "https://refunds.example.com"},
         "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}}} | example,
        env={"SHOPIFY_CLIENT_SECRET": SECRET, "SHOPIFY_ACCESS_TOKEN": TOKEN},
    )
    settings = parse_settings(config.platforms["shopify"])
    assert settings.shops["example.myshopify.com"].client_secrets == (SECRET,)
    assert settings.client_cert_header == "X-Client-Verify"
