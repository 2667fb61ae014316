"""The channel seam holds: no module under `refund_adapter/engine/` or `refund_adapter/store/` names a field of an
Alipay protocol (MAPI or OpenAPI). Those belong behind `RefundChannel` (refund_adapter/channels/), where each
protocol is read in one place; the engine and the store decide on channel-neutral results only.

A name counts wherever the code could use it: identifiers (variables, attributes, arguments, keywords, functions,
imports) and string literals (dict keys, log and journal text). SQL text may name a column the channel owns (its
name kept so that no migration is needed): the store stores and finds it, and never builds or reads its content.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "refund_adapter"
FENCED = ("engine", "store")

# The one list of protocol fields the engine and the store must not name: MAPI's batch refund, its notifies and
# its query (§1, §4, §6 of alipay-mapi.md), and OpenAPI's alipay.trade.refund and its query (§9).
PROTOCOL_FIELDS = frozenset({
    # MAPI
    "batch_no", "batch_num", "detail_data", "refund_date", "result_details", "success_num", "notify_id",
    "notify_type", "notify_time", "unfreezed_details", "refund_batch_no", "dback_notify_url", "use_freeze_amount",
    "input_charset", "_input_charset",
    # OpenAPI
    "out_request_no", "fund_change", "refund_fee", "refund_amount", "refund_reason", "gmt_refund_pay",
    "app_auth_token", "biz_content", "refund_detail_item_list", "send_back_fee",
})
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b|\bFROM\s+\w+\s+WHERE\b", re.IGNORECASE)


def _identifiers(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.arg) or (isinstance(node, ast.keyword) and node.arg):
        yield node.arg
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.alias):
        yield from (node.name.split(".")[-1], node.asname or "")
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield from node.module.split(".")


def _strings(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for each protocol field `source` names, outside SQL text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        found += [(line, f"identifier {name}") for name in _identifiers(node) if name in PROTOCOL_FIELDS]
        for text in _strings(node):
            if SQL.search(text):
                continue
            found += [(line, f"string {word!r}") for word in WORD.findall(text) if word in PROTOCOL_FIELDS]
    return sorted(set(found))


def fenced_modules() -> list[Path]:
    return sorted(path for part in FENCED for path in (ROOT / part).rglob("*.py"))


@pytest.mark.parametrize("path", fenced_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_engine_and_store_name_no_protocol_field(path: Path) -> None:
    found = violations(path.read_text("utf-8"))
    assert not found, f"{path.relative_to(ROOT)} names protocol fields (move them behind the channel): " + "; ".join(
        f"line {line}: {what}" for line, what in found
    )


def test_the_fence_covers_the_engine_and_the_store() -> None:
    names = {str(path.relative_to(ROOT)) for path in fenced_modules()}
    assert {"engine/submitter.py", "engine/alipay_query.py", "engine/batcher.py", "store/sql.py"} <= names


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("batch_no = make()", "identifier batch_no"),
        ("batch.batch_no", "identifier batch_no"),
        ("def f(notify_id): ...", "identifier notify_id"),
        ("f(out_request_no=1)", "identifier out_request_no"),
        ("from refund_adapter.channels.mapi.batch_no import build", "identifier batch_no"),
        ("params['fund_change']", "string 'fund_change'"),
        ("log.info('batch %s: success_num %s', a, b)", "string 'success_num'"),
        ("f'unknown batch_no {x}'", "string 'batch_no'"),
        ("detail = {'result_details': line}", "string 'result_details'"),
    ],
)
def test_the_fence_sees_a_field_in_each_form(source: str, what: str) -> None:
    assert [found for _, found in violations(source)] == [what]


@pytest.mark.parametrize(
    "source",
    [
        "tx.fetchrow('SELECT id FROM batches WHERE batch_no = $1', reference)",
        "SQL = '''INSERT INTO notifies (batch_no, notify_id, kind) VALUES ($1, $2, $3)'''",
        "batch.reference, refund.trade_no, 'refund notify'",
    ],
)
def test_sql_over_the_channels_column_and_neutral_names_pass(source: str) -> None:
    assert violations(source) == []
