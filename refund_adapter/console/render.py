"""Refunds and batches for people (aligned tables, times in the machine's zone) or for scripts (JSON)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

REFUND_COLUMNS = ("id", "platform", "shop", "platform_refund_id", "trade_no", "amount", "state", "code", "channel",
                  "batch_no", "report_state", "review", "created_at")
BATCH_COLUMNS = ("id", "account", "batch_no", "state", "code", "refunds", "submit_attempts", "query_attempts",
                 "created_at")
FREE_TEXT = frozenset({"report_error", "review"})  # what a platform or Alipay said: any length
FREE_TEXT_WIDTH = 60
DEAD_LETTER_COLUMNS = ("id", "platform", "shop", "platform_refund_id", "state", "report_attempts", "report_error",
                       "updated_at")


def _console() -> Console:
    """Wide enough when piped (rich would cut a table to 80 columns), the terminal's width otherwise."""
    width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else 200
    return Console(width=width, soft_wrap=False, highlight=False, markup=False)


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_at"):
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], empty: str) -> None:
    """One aligned row per item; `empty` when there is none."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(name, row.get(name)) for name in columns] for row in rows]
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for index, name in enumerate(columns):
        if name in FREE_TEXT:  # cut to fit; --json has it whole
            grid.add_column(name, no_wrap=True, overflow="ellipsis", max_width=FREE_TEXT_WIDTH)
        else:  # ids, states, amounts, times: always whole
            width = max(len(name), *(len(line[index]) for line in cells))
            grid.add_column(name, justify="right" if name in ("id", "amount") else "left", no_wrap=True,
                            min_width=width)
    for line in cells:
        grid.add_row(*line)
    _console().print(grid)


def fields(item: Mapping[str, Any], skip: Iterable[str] = ()) -> None:
    """One `name  value` line per field, for a single refund or batch."""
    grid = Table(box=None, show_header=False, pad_edge=False)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for name, value in item.items():
        if name not in skip:
            grid.add_row(name, _cell(name, value))
    _console().print(grid)


def json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line (for `jq`, a spreadsheet import, a monitoring script)."""
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False))


def json_object(item: Any) -> None:
    click.echo(json.dumps(item, ensure_ascii=False, indent=2))
