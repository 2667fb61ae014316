"""The payment book of payments-app mode: files an operator imports, the CLI, the Python API for plugins."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from refund_adapter_shopify import Payment, PaymentBook
from refund_adapter_shopify.payments import read_payments_file

from refund_adapter.cli import main
from refund_adapter.store import RefundStore, store_from_url

from .fake_shopify import DOMAIN, TRADE_NO

CSV = f"""shop,payment_id,trade_no,amount,order_id
{DOMAIN},e6dXWOq7-_NSjXFeCjQ9jsGZ,{TRADE_NO},123.00,450789469
Alipay-Test.myshopify.com, p-2 ,2026112522000000000000000009,,
"""


async def test_plugins_record_and_find_payments(store: RefundStore) -> None:
    book = PaymentBook.in_store(store)
    assert await book.record([Payment(DOMAIN, "p-1", TRADE_NO, Decimal("10.50"), "42")]) == 1
    assert await book.record([]) == 0
    assert await book.find(DOMAIN, "p-1") == Payment(DOMAIN, "p-1", TRADE_NO, Decimal("10.50"), "42")
    assert await book.find(DOMAIN, "p-2") is None
    assert await book.find("other.myshopify.com", "p-1") is None  # one shop cannot name another's payment
    await book.record([Payment(DOMAIN, "p-1", "2026112522000000000000000009")])  # a correction
    assert (await book.find(DOMAIN, "p-1")) == Payment(DOMAIN, "p-1", "2026112522000000000000000009")


def test_csv_and_json_files(tmp_path: Path) -> None:
    expected = [
        Payment(DOMAIN, "e6dXWOq7-_NSjXFeCjQ9jsGZ", TRADE_NO, Decimal("123.00"), "450789469"),
        Payment(DOMAIN, "p-2", "2026112522000000000000000009"),
    ]
    (tmp_path / "p.csv").write_text(CSV, "utf-8-sig")  # as spreadsheets save it, with a BOM
    (tmp_path / "p.json").write_text(json.dumps([
        {"shop": DOMAIN, "payment_id": "e6dXWOq7-_NSjXFeCjQ9jsGZ", "trade_no": TRADE_NO, "amount": "123.00",
         "order_id": "450789469"},
        {"shop": DOMAIN, "payment_id": "p-2", "trade_no": "2026112522000000000000000009"},
    ]), "utf-8")
    assert read_payments_file(tmp_path / "p.csv") == expected
    assert read_payments_file(tmp_path / "p.json") == expected


def test_every_bad_row_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([
        {"shop": DOMAIN, "payment_id": "p-1", "trade_no": "not/a/trade"},
        {"shop": DOMAIN, "payment_id": "p-2", "trade_no": TRADE_NO, "amount": 12.5},
        {"shop": DOMAIN, "trade_no": TRADE_NO, "amount": "1e3"},
        {"shop": DOMAIN, "payment_id": "p-4", "trade_no": TRADE_NO, "amount": "-1"},
        {"shop": DOMAIN, "payment": "p-5"},
    ]), "utf-8")
    with pytest.raises(ValueError) as caught:
        read_payments_file(path)
    assert str(caught.value).splitlines() == [
        f"{path} item 0: trade_no: must be 1 to 64 ASCII letters or digits",
        f"{path} item 1: amount: must be a string",
        f"{path} item 2: payment_id: missing",
        f"{path} item 3: amount: must be plain digits with at most 2 decimals (no sign, exponent or spaces), "
        "greater than zero",
        f"{path} item 4: unknown fields: payment",
    ]
    for name, text in (("p.txt", "x"), ("q.json", '{"shop": "x"}')):
        (tmp_path / name).write_text(text, "utf-8")
        with pytest.raises(ValueError, match=r"use a \.csv or a \.json file|must be a JSON list of objects"):
            read_payments_file(tmp_path / name)


def write_config(tmp_path: Path, shopify: bool = True) -> Path:
    config = {
        "server": {"public_url": "http://127.0.0.1:8080"},
        "store": {"url": f"sqlite:///{tmp_path / 'refunds.db'}"},
        "alipay": {"accounts": {"main": {"partner": "2088101122136241", "md5_key": "k"}}},
        "platforms": {"shopify": {"client_cert_header": "X-Client-Verify", "shops": [
            {"domain": DOMAIN, "access_token": "t", "alipay_account": "main", "mode": "payments_app"}]}}
        if shopify else {},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def test_import_payments_records_them_in_the_configured_store(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(CSV, "utf-8")
    config = write_config(tmp_path)
    result = CliRunner().invoke(main, ["shopify", "import-payments", "--config", str(config), str(tmp_path / "p.csv")])
    assert (result.exit_code, result.output) == (0, "recorded 2 payments\n")

    async def find() -> Payment | None:
        store = store_from_url(f"sqlite:///{tmp_path / 'refunds.db'}")
        await store.open()
        try:
            return await PaymentBook.in_store(store).find(DOMAIN, "p-2")
        finally:
            await store.close()

    assert asyncio.run(find()) == Payment(DOMAIN, "p-2", "2026112522000000000000000009")


def test_import_payments_refuses_unknown_shops_bad_rows_and_a_config_without_shopify(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"shop,payment_id,trade_no\nother.myshopify.com,p-1,{TRADE_NO}\n{DOMAIN},p-2,bad-trade\n", "utf-8")
    result = CliRunner().invoke(main, ["shopify", "import-payments", "--config", str(write_config(tmp_path)),
                                       str(path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"{path} line 3: trade_no: must be 1 to 64 ASCII letters or digits"]

    path.write_text(f"shop,payment_id,trade_no\nother.myshopify.com,p-1,{TRADE_NO}\n", "utf-8")
    for shopify in (True, False):
        result = CliRunner().invoke(main, ["shopify", "import-payments", "--config",
                                           str(write_config(tmp_path, shopify)), str(path)])
        assert result.exit_code == 2
        assert result.output == "shop 'other.myshopify.com' is not in platforms.shopify.shops\n"
    assert not (tmp_path / "refunds.db").exists()  # nothing was opened, let alone written
