"""OpenAPI accounts in the config: `channel: openapi`, keys inline or in files, checked when read (they load, RSA2
keys are long enough, Alipay's key is not our own), every problem named by its path, no key ever printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from refund_adapter.cli import main
from refund_adapter.config import AlipayAccount, ConfigError, OpenApiAccount, parse_config

from .conftest import private_pem, public_pem

APP_ID = "2021000000000001"


def _doc(accounts: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"public_url": "https://refunds.example.com"}, "alipay": {"accounts": accounts}}


def _problems(accounts: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(accounts), env=env or {})
    return caught.value.problems


@pytest.fixture
def keys(app_key: rsa.RSAPrivateKey, alipay_key: rsa.RSAPrivateKey) -> dict[str, str]:
    return {"APP_KEY": private_pem(app_key), "ALIPAY_PUB": public_pem(alipay_key)}


def test_an_openapi_account_beside_a_mapi_one(keys: dict[str, str]) -> None:
    config = parse_config(_doc({
        "legacy": {"partner": "2088101122136241", "md5_key": "k"},
        "modern": {"channel": "openapi", "app_id": APP_ID, "private_key": "${APP_KEY}",
                   "alipay_public_key": "${ALIPAY_PUB}", "app_auth_token": "202612BBsecret", "max_concurrency": 2},
    }), env=keys)
    legacy, modern = config.alipay.accounts["legacy"], config.alipay.accounts["modern"]
    assert isinstance(legacy, AlipayAccount) and legacy.channel == "mapi"
    assert isinstance(modern, OpenApiAccount) and modern.channel == "openapi"
    assert (modern.app_id, modern.sign_type, modern.max_concurrency) == (APP_ID, "RSA2", 2)
    assert modern.gateway_url == "https://openapi.alipay.com/gateway.do"
    assert modern.app_auth_token is not None and modern.app_auth_token.reveal() == "202612BBsecret"
    assert "PRIVATE" not in repr(modern) and "202612BBsecret" not in repr(modern)


def test_keys_from_files_relative_to_the_config(tmp_path: Path, keys: dict[str, str]) -> None:
    (tmp_path / "app.pem").write_text(keys["APP_KEY"])
    (tmp_path / "alipay.pem").write_text(keys["ALIPAY_PUB"])
    config = parse_config(_doc({"m": {"channel": "openapi", "app_id": int(APP_ID), "sign_type": "RSA",
                                      "private_key_file": "app.pem", "alipay_public_key_file": "alipay.pem"}}),
                          env={}, base_dir=tmp_path)
    account = config.alipay.accounts["m"]
    assert isinstance(account, OpenApiAccount)
    assert account.private_key_file == tmp_path / "app.pem" and account.sign_type == "RSA"


def test_every_problem_named_by_its_path(keys: dict[str, str], app_key: rsa.RSAPrivateKey) -> None:
    assert _problems({
        "a": {"channel": "openapi", "app_id": "123", "sign_type": "SM2", "partner": "2088101122136241"},
        "b": {"channel": "openapi", "app_id": APP_ID, "private_key": "not a key", "alipay_public_key": "${ALIPAY_PUB}",
              "gateway_url": "ftp://x", "max_concurrency": 0},
        "c": {"channel": "openapi", "app_id": APP_ID, "private_key": "${APP_KEY}",
              "alipay_public_key": public_pem(app_key)},
        "d": {"channel": "openapi", "app_id": APP_ID, "private_key": "${APP_KEY}", "private_key_file": "x.pem",
              "alipay_public_key": "${ALIPAY_PUB}"},
        "e": {"channel": "carrier-pigeon", "partner": "2088101122136241", "md5_key": "k"},
    }, env=keys) == [
        "alipay.accounts.a.partner: unknown key",
        "alipay.accounts.a.app_id: must be the app's id: 16 digits",
        "alipay.accounts.a.sign_type: unsupported sign_type SM2 (use RSA2 or RSA)",
        "alipay.accounts.a.private_key: missing (give private_key or private_key_file)",
        "alipay.accounts.a.alipay_public_key: missing (give alipay_public_key or alipay_public_key_file)",
        "alipay.accounts.b.private_key: not a readable unencrypted RSA private key (PKCS#1 or PKCS#8 PEM)",
        "alipay.accounts.b.gateway_url: must be an http(s) URL",
        "alipay.accounts.b.max_concurrency: must be an integer between 1 and 64",
        "alipay.accounts.c.alipay_public_key: is the app's own public key; use Alipay's public key from the open "
        "platform console",
        "alipay.accounts.d.private_key: give private_key or private_key_file, not both",
        "alipay.accounts.e.channel: must be one of mapi, mapi_pwd, openapi",
    ]


def test_rsa2_refuses_a_short_key(keys: dict[str, str]) -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    accounts = {"m": {"channel": "openapi", "app_id": APP_ID, "private_key": private_pem(short),
                      "alipay_public_key": "${ALIPAY_PUB}"}}
    assert _problems(accounts, env=keys) == [
        "alipay.accounts.m.private_key: a 1024-bit key; RSA2 needs at least 2048 bits"]
    accounts["m"]["sign_type"] = "RSA"
    assert parse_config(_doc(accounts), env=keys).alipay.accounts["m"].sign_type == "RSA"


def test_check_config_names_the_problem_and_never_prints_a_key(tmp_path: Path, keys: dict[str, str]) -> None:
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    doc = _doc({"m": {"channel": "openapi", "app_id": APP_ID, "private_key": keys["APP_KEY"],
                      "alipay_public_key": keys["APP_KEY"]}})  # a private key where the public one belongs
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "alipay.accounts.m.alipay_public_key: not a readable RSA public key" in result.output
    body = keys["APP_KEY"].splitlines()[1]
    assert body not in result.output
    doc["alipay"]["accounts"]["m"]["alipay_public_key"] = public_pem(wrong)
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 1 accounts")


async def test_one_place_opens_each_accounts_channel_mapi_mapi_pwd_or_openapi(keys: dict[str, str]) -> None:
    import aiohttp

    from refund_adapter.channels.accounts import open_channel
    from refund_adapter.channels.base import ApprovalChannel
    from refund_adapter.channels.mapi.channel import MapiChannel
    from refund_adapter.channels.mapi.pwd_channel import PwdChannel
    from refund_adapter.channels.openapi.channel import OpenApiChannel

    config = parse_config(_doc({
        "nopwd": {"partner": "2088101122136241", "md5_key": "k"},
        "pwd": {"channel": "mapi_pwd", "partner": "2088101122136241", "md5_key": "k",
                "seller_user_id": "2088101122136241"},
        "modern": {"channel": "openapi", "app_id": APP_ID, "private_key": "${APP_KEY}",
                   "alipay_public_key": "${ALIPAY_PUB}"},
    }), env=keys)
    assert [a.approved_by_operator for a in config.alipay.accounts.values()] == [False, True, False]
    async with aiohttp.ClientSession() as session:
        channels = {name: open_channel(config, account, session, session.timeout)
                    for name, account in config.alipay.accounts.items()}
    assert type(channels["nopwd"]) is MapiChannel
    assert type(channels["pwd"]) is PwdChannel
    assert type(channels["modern"]) is OpenApiChannel
    assert [isinstance(c, ApprovalChannel) for c in channels.values()] == [False, True, False]
