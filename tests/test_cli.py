"""The operator's commands read the same store the service writes."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from refund_adapter.cli import main
from refund_adapter.models import RefundRequest
from refund_adapter.store import store_from_url


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""server: {{public_url: "http://127.0.0.1:8080"}}
store: {{url: "sqlite:///{tmp_path / 'refunds.db'}"}}
alipay: {{accounts: {{main: {{partner: "2088101122136241", sign_type: MD5, md5_key: k}}}}}}
""",
        "utf-8",
    )
    return path


def _seed(tmp_path: Path) -> None:
    async def work() -> None:
        store = store_from_url(f"sqlite:///{tmp_path / 'refunds.db'}")
        await store.open()
        request = RefundRequest("generic", "s1", "r1", "o1", "2026112500000001", Decimal("12.50"), "CNY", "why", "main")
        await store.accept([request], 1_780_000_000.0)
        await store.close()

    asyncio.run(work())


def test_refunds_lists_what_the_store_holds(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _seed(tmp_path)
    result = CliRunner().invoke(main, ["refunds", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["platform_refund_id"], r["amount"], r["state"]) for r in rows] == [("r1", "12.50", "received")]
    empty = CliRunner().invoke(main, ["refunds", "--config", str(config), "--state", "succeeded"])
    assert empty.exit_code == 0 and empty.output == ""


def test_retry_dead_letters_reports_how_many(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["retry-dead-letters", "--config", str(_config(tmp_path))])
    assert result.exit_code == 0 and result.output.strip() == "requeued 0"


def test_a_bad_config_names_its_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server: {}\n", "utf-8")
    result = CliRunner().invoke(main, ["refunds", "--config", str(path)])
    assert result.exit_code == 2
    assert "server.public_url" in result.output


def test_check_config_reports_a_plugin_section_problem_with_its_path(tmp_path: Path) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text("utf-8") + "platforms: {generic: {shops: [{id: s1}]}}\n", "utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "platforms.generic.shops[0].secret" in result.output


def test_check_config_reports_a_shop_naming_an_unknown_alipay_account(tmp_path: Path) -> None:
    path = _config(tmp_path)
    shop = ('{id: s1, secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAA", callback_url: "https://shop.example/cb", '
            "alipay_account: hk}")
    path.write_text(path.read_text("utf-8") + f"platforms: {{generic: {{shops: [{shop}]}}}}\n", "utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "platforms.generic: shop 's1' names alipay_account 'hk', which is not configured" in result.output
