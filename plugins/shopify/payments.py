"""Payments-app mode: which Alipay trade paid each Shopify payment.

A refund session names only Shopify's `payment_id`, so the trade number must have been recorded when the
payment was settled. The map lives in the refund store (the shopify plugin's `PluginData`), as durable as the
refunds and on every backend. It is filled by `refund-adapter shopify import-payments` (CSV or JSON) and by
plugins that settle payments, which call `PaymentBook.in_store(store).record([...])`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from refund_adapter.plugin_api import AMOUNT_RULE, TRADE_NO_RULE, PluginData, is_trade_no, parse_amount_text

from .settings import NAME

FIELDS = ("shop", "payment_id", "trade_no", "amount", "order_id")


@dataclass(frozen=True)
class Payment:
    """One settled payment. `amount`, when known, caps what its refunds may add up to."""

    shop: str  # the shop's domain, example.myshopify.com
    payment_id: str  # Shopify's payment id, as refund sessions name it
    trade_no: str  # the Alipay trade that paid it
    amount: Decimal | None = None
    order_id: str = ""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Payment:
        """A payment from a JSON object or CSV row; ValueError names the field that is wrong."""
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(map(str, unknown))}")
        text = {}
        for name in FIELDS:
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: must be a string")
            text[name] = (value or "").strip()
        for name in ("shop", "payment_id", "trade_no"):
            if not text[name]:
                raise ValueError(f"{name}: missing")
        if not is_trade_no(text["trade_no"]):
            raise ValueError(f"trade_no: {TRADE_NO_RULE}")
        amount = parse_amount_text(text["amount"]) if text["amount"] else None
        if text["amount"] and amount is None:
            raise ValueError(f"amount: {AMOUNT_RULE}")
        return cls(text["shop"].lower(), text["payment_id"], text["trade_no"], amount, text["order_id"])

    def to_json(self) -> str:
        fields = asdict(self) | {"amount": None if self.amount is None else str(self.amount)}
        return json.dumps(fields, sort_keys=True)


def _key(shop: str, payment_id: str) -> str:
    return f"payment:{shop}:{payment_id}"


class PaymentBook:
    """The payment_id -> trade map: written by imports and payment plugins, read by refund sessions."""

    def __init__(self, data: PluginData) -> None:
        self._data = data

    @classmethod
    def in_store(cls, store: Any) -> PaymentBook:
        """The book kept in `store` (a refund store: `app[ENGINE].store` in a plugin, or one the CLI opened)."""
        return cls(PluginData(store, NAME))

    async def record(self, payments: Iterable[Payment]) -> int:
        """Record (or correct) payments in one transaction; returns how many."""
        items = {_key(p.shop, p.payment_id): p.to_json() for p in payments}
        if items:
            await self._data.put_many(items)
        return len(items)

    async def find(self, shop: str, payment_id: str) -> Payment | None:
        stored = await self._data.get(_key(shop, payment_id))
        return None if stored is None else Payment.from_mapping(json.loads(stored))


def read_payments_file(path: Path) -> list[Payment]:
    """Payments from a CSV file (a header row naming the columns) or a JSON list of objects, by extension.

    ValueError lists every bad row, so one run shows everything to fix.
    """
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        rows = json.loads(text)
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError(f"{path}: must be a JSON list of objects")
        numbered = [(f"item {index}", row) for index, row in enumerate(rows)]
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        numbered = [(f"line {index}", row) for index, row in enumerate(reader, start=2)]
    else:
        raise ValueError(f"{path}: use a .csv or a .json file")
    payments, problems = [], []
    for where, row in numbered:
        try:
            payments.append(Payment.from_mapping(row))
        except ValueError as exc:
            problems.append(f"{path} {where}: {exc}")
    if problems:
        raise ValueError("\n".join(problems))
    return payments
