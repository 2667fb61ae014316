"""`refund-adapter shopify ...`: the operator's commands for the Shopify platform."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from refund_adapter.plugin_api import ConfigError, load_config_or_exit, with_store

from .payments import PaymentBook, read_payments_file
from .settings import NAME, parse_settings


@click.group(NAME)
def shopify() -> None:
    """Shopify platform: the payments-app payment book."""


@shopify.command("import-payments")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The YAML config.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_payments(config_path: str, file: Path) -> None:
    """Record which Alipay trade paid each Shopify payment, for refund sessions (payments-app mode).

    FILE is a .csv with a header row (shop,payment_id,trade_no and optionally amount,order_id) or a .json list
    of such objects. Recording a payment again corrects it. Every problem is listed (exit 2) and nothing is
    recorded then. With an SQLite store, stop `serve` first: the file is locked by the running service.
    """
    problems: list[str] = []
    try:
        payments = read_payments_file(file)
    except (OSError, ValueError) as exc:  # ValueError: also a file that is not JSON
        problems, payments = str(exc).splitlines(), []
    section = load_config_or_exit(config_path).platforms.get(NAME)
    try:
        shops = parse_settings(section).shops if section is not None else {}
    except ConfigError as exc:
        problems += exc.problems
        shops = {}
    problems += [f"shop {shop!r} is not in platforms.{NAME}.shops" for shop in sorted({p.shop for p in payments})
                 if shop not in shops]
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(2)

    async def record(store: Any) -> int:
        return await PaymentBook.in_store(store).record(payments)

    click.echo(f"recorded {asyncio.run(with_store(config_path, record))} payments")
