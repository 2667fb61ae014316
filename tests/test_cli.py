"""The operator's commands read the same store the service writes."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.cli import main
from refund_adapter.console.render import REFUND_COLUMNS
from refund_adapter.models import RefundRequest
from refund_adapter.store import store_from_url
from refund_adapter.testing import free_port


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
    assert empty.exit_code == 0 and empty.output == "no refunds\n"
    empty = CliRunner().invoke(main, ["refunds", "list", "--config", str(config), "--state", "succeeded", "--json"])
    assert empty.exit_code == 0 and empty.output == ""


def test_refunds_are_an_aligned_table_for_people(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _seed(tmp_path)
    result = CliRunner().invoke(main, ["refunds", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == list(REFUND_COLUMNS)
    assert row.split()[1:9] == ["generic", "s1", "r1", "2026112500000001", "12.50", "received", "-", "-"]
    assert header.index("shop") == row.index("s1")


def test_a_missing_store_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dead-letters", "list", "--config", str(_config(tmp_path))])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read the store: SQLite ") and result.output.count("\n") == 1
    assert not (tmp_path / "refunds.db").exists()  # a reader creates nothing


def test_retry_dead_letters_without_a_running_service_writes_the_store(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    for command in (["retry-dead-letters"], ["dead-letters", "retry"]):  # the older spelling still works
        result = CliRunner().invoke(main, [*command, "--config", str(_config(tmp_path)), "--url", nobody])
        assert result.exit_code == 0 and result.output.strip() == "requeued 0", result.output


def test_a_requery_needs_the_running_service(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    async def a_batch() -> int:
        store = store_from_url(f"sqlite:///{tmp_path / 'refunds.db'}")
        await store.open()
        try:
            batch = await store.create_batch("main", 10, batch_nos(date(2026, 11, 25)), 1_780_000_000.0)
            assert batch is not None
            return batch.id
        finally:
            await store.close()

    _seed(tmp_path)
    batch_id = str(asyncio.run(a_batch()))
    result = CliRunner().invoke(main, ["batches", "requery", batch_id, "--config", str(_config(tmp_path)),
                                       "--url", nobody])
    assert result.exit_code == 1
    assert result.output == f"Error: no service answers at {nobody}: a re-query needs the running `serve`\n"


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


def test_refunds_list_reads_postgresql_read_only(tmp_path: Path, pg_url: str) -> None:
    async def seed() -> None:
        store = store_from_url(pg_url)
        await store.open()
        try:
            request = RefundRequest("generic", "s1", "r1", "o1", "2026112500000001", Decimal("12.50"), "CNY", "",
                                    "main")
            await store.accept([request], 1_780_000_000.0)
        finally:
            await store.close()

    asyncio.run(seed())
    config = _config(tmp_path)
    config.write_text(config.read_text("utf-8").replace(f"sqlite:///{tmp_path / 'refunds.db'}", pg_url), "utf-8")
    result = CliRunner().invoke(main, ["refunds", "list", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["platform_refund_id"] for line in result.output.splitlines()] == ["r1"]
    missing = CliRunner().invoke(main, ["refunds", "show", "2", "--config", str(config)])
    assert (missing.exit_code, missing.output) == (1, "Error: no refund 2\n")


def test_a_long_report_error_is_cut_and_every_other_column_stays_whole(tmp_path: Path) -> None:
    async def dead_letter() -> None:
        store = store_from_url(f"sqlite:///{tmp_path / 'refunds.db'}")
        await store.open()
        try:
            over = RefundRequest("generic", "s1", "r1", "o1", "2026112500000001", Decimal("12.50"), "CNY", "", "main",
                                 paid_amount=Decimal("1.00"))  # rejected at once, its report due
            await store.accept([over], 1_780_000_000.0)
            (claimed,) = await store.claim_reports(1_780_000_000.0, 10, 60)
            await store.report_failed(claimed.id, "HTTP 503 " + "x" * 400, next_at=None, now=1_780_000_001.0)
        finally:
            await store.close()

    asyncio.run(dead_letter())
    result = CliRunner().invoke(main, ["dead-letters", "list", "--config", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert row.split()[:6] == ["1", "generic", "s1", "r1", "rejected", "1"]
    assert "HTTP 503 xxx" in row and "x" * 100 not in row and "…" in row
    assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", row.rstrip())  # the time after it, whole
    assert header.split()[-1] == "updated_at"
