"""The benchmark scripts run from a clean checkout and check what they claim (no timing is asserted here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_script(name: str, *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, str(BENCH / name), *args, "--json"], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_ingest(summary: dict[str, object]) -> None:
    checks = summary["checks"]
    assert checks["ok"] and checks["acknowledged"] > 0 and checks["acknowledged_missing"] == 0
    for target in ("bare", "bare-asyncio", "serve"):
        row = summary[target]
        assert row["errors"] == 0 and row["requests_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
        # /proc counts CPU in 10 ms ticks: a round this short may show none, but the figures must be there.
        assert row["server_cpu_us_per_request"] is not None and row["server_cpu_us_per_request"] >= 0
        assert row["generator_cpu_us_per_request"] > 0
    for bare in ("bare", "bare-asyncio"):
        assert summary[f"ratio_{bare}"]["requests_per_s"] > 0 and len(summary[f"ratio_{bare}"]["rounds"]) == 1
    assert summary["serve"]["drain_s"] >= 0 and len(summary["load_average"]) == 3


def needs_wrk() -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian's package wrk; .ci/run installs it)")


def test_ingest_bench_with_wrk_stores_every_acknowledged_refund_and_reports_cpu() -> None:
    needs_wrk()
    summary = run_script("ingest.py", "--duration", "2", "--warmup-seconds", "1", "--rounds", "1",
                         "--connections", "16")
    _check_ingest(summary)
    # every stored refund was sent, the shop got each result, none twice
    checks = summary["checks"]
    assert checks["stored"] >= checks["acknowledged"] and checks["stored_never_sent"] == checks["duplicates"] == 0
    assert checks["shop_distinct"] == checks["stored"] == checks["delivered"]
    # the machine's ceiling, from the same run: the goal's budget for serve is what is left by the others' CPU
    top = summary["ceiling"]
    assert top["all_cpu_us_per_refund"] > top["others_cpu_us_per_refund"] > 0 and top["max_requests_per_s"] > 0


def test_ingest_bench_with_the_python_driver() -> None:
    summary = run_script("ingest.py", "--driver", "python", "--requests", "150", "--rounds", "1", "--warmup", "30",
                         "--concurrency", "16")
    _check_ingest(summary)
    assert summary["checks"]["acknowledged"] == summary["checks"]["stored"] == 30 + 150  # warm-up and round


def test_batching_bench_drains_the_backlog_before_and_after_0003() -> None:
    summary = run_script("batching.py", "--settled", "500", "--waiting", "2500", "--max-details", "1000", "--compare")
    for label in ("before_0003", "now"):
        assert summary[label]["batches"] == 3  # 1000 + 1000 + 500, every waiting refund batched
        assert summary[label]["ms_per_batch"] > 0


def test_ab_bench_runs_two_builds_side_by_side_and_stores_every_acknowledged_refund() -> None:
    summary = run_script("ab.py", "HEAD", "--requests", "100", "--rounds", "1", "--concurrency", "8")
    for build in ("A", "B"):
        row = summary[build]
        assert row["errors"] == 0 and row["checks"]["stored"] == row["checks"]["acknowledged"] == 500 + 100
        assert row["checks"]["acknowledged_missing"] == 0
    assert summary["A"]["revision"] == "HEAD"
    assert len(summary["b_over_a_requests_per_s"]) == 1


def test_kill_loop_bench_prints_its_seed_and_counts_and_finds_no_problem() -> None:
    summary = run_script("kill_loop.py", "--loops", "2", "--refunds", "30", "--seed", "7")
    assert summary["seed"] == 7 and summary["kills"] == 2 and summary["problems"] == []
    assert summary["acknowledged"] == summary["paid"] == summary["reported"] == 30


def test_admin_bench_builds_a_store_and_times_every_read_on_both_backends() -> None:
    summary = run_script("admin.py", "--refunds", "3000", "--requests", "3")
    assert summary["refunds"] == 3000 and summary["failures"] == 0
    for backend in ("sqlite", "postgres"):
        rows = summary[backend]["requests"]
        assert len(rows) == 18 and all(row["p95_ms"] >= row["p50_ms"] > 0 for row in rows.values())
        assert sum(name.startswith("page: ") for name in rows) == 7  # the dashboard's pages, with a session


@pytest.mark.parametrize("driver", ["wrk", "python"])
def test_e2e_bench_reports_every_refund_with_its_stages_and_serves_memory(driver: str) -> None:
    if driver == "wrk":
        needs_wrk()
    summary = run_script("e2e.py", "--refunds", "200", "--driver", driver)
    assert summary["generator"] == driver and summary["cpu_s"]["generator"] > 0
    assert summary["ok"] and summary["acknowledged"] == summary["reported"] == 200
    assert summary["wrong_results"] == summary["paid_twice"] == 0
    assert 0 < summary["reported_p50_s"] <= summary["reported_p99_s"] <= summary["reported_max_s"]
    assert summary["serve_peak_rss_mb"] > 0 and summary["elapsed_s"] >= summary["intake_s"]
    assert all(times["p50"] is not None for times in summary["stages_s"].values())


def test_e2e_bench_paces_a_steady_rate_whatever_the_answers() -> None:
    summary = run_script("e2e.py", "--rate", "50", "--duration", "2", "--set", "batching.max_wait_seconds=0.2")
    assert summary["mode"] == "50/s" and summary["ok"] and summary["reported"] == 100
    assert summary["intake_s"] >= 1.9  # the last webhook left at 99 / 50 s


def test_statement_cache_bench_records_every_size_and_reads_its_memory() -> None:
    for path, refunds in (("reports", 210), ("batches", 210)):
        summary = run_script("statement_cache.py", "--path", path, "--sizes", "20")
        assert summary["path"] == path and summary["refunds"] == refunds
        assert summary["rss_after_mb"] > 0 and summary["cpu_s"] >= 0


def test_store_steps_bench_times_every_step_of_a_batch() -> None:
    summary = run_script("store_steps.py", "--refunds", "50", "--rounds", "1")
    assert summary["refunds"] == 50 and set(summary["ms"]) == {
        "create_batch", "claim_batch_to_submit", "set_batch_state", "record_results", "claim_reports",
        "report_delivered"}
    assert all(ms > 0 for ms in summary["ms"].values())
