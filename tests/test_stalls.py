"""No request and no engine step holds the event loop for long (docs/reliability.md, "The event loop is never
held for long"). What is asserted here is structural: the heavy work is bounded, chunked or off the loop, and
answers right. How long the loop was held is measured (never asserted: the machine is shared) by
`bench/stalls.py`, which the last test runs at 50,000 refunds and whose figures the run's summary prints."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from refund_adapter.channels.mapi.channel import MAX_NOTIFY_ESCAPES, MAX_NOTIFY_FIELDS
from refund_adapter.config import parse_config
from refund_adapter.loop_probe import HealthProbe, LoopLag, longest_stall
from refund_adapter.models import BatchState
from refund_adapter.store import synthetic
from refund_adapter.store.sql import SqlStore
from refund_adapter.testing import ADMIN_HEADERS, free_port, local_config, serve
from refund_adapter.web.admin import MAX_RETRY_BODY_BYTES
from refund_adapter.web.app import create_app
from refund_adapter.web.keys import ENGINE
from tests import figures as printed

BENCH = Path(__file__).resolve().parent.parent / "bench" / "stalls.py"
PROBLEM = "urn:refund-adapter:problem:"
SECRET = "whsec_" + base64.b64encode(b"stalls-test-shop-secret-32bytes!").decode()


async def test_the_loop_lag_probe_sees_a_held_loop_and_the_health_probe_times_requests() -> None:
    async def hold(seconds: float) -> None:
        await asyncio.sleep(0.02)  # both probes have sampled at least once
        time.sleep(seconds)  # noqa: ASYNC251 - the stall being measured
        await asyncio.sleep(0.02)

    _, stall = await longest_stall(hold(0.05))
    assert stall >= 0.045  # the probe woke no earlier than the loop was let go (a bound, not a speed)
    async with LoopLag() as collected:
        gc.collect()
    assert collected.longest_gc > 0 and gc.callbacks.count(collected._on_gc) == 0  # timed, and unhooked after
    app = aiohttp.web.Application()
    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    async with (
        serve(app) as url,
        aiohttp.ClientSession() as http,
        HealthProbe(http, url + "/healthz") as probe,
        LoopLag() as lag,
    ):
        await hold(0.05)
    assert lag.longest >= 0.045
    assert probe.samples >= 1 and probe.longest > 0  # answered, and timed (it is held only when in flight then)


@dataclass
class Admin:
    url: str
    store: SqlStore
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**ADMIN_HEADERS, **kwargs.pop("headers", {})}  # every call here is to the operator's API
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if "json" in resp.content_type else text


@pytest.fixture
async def admin(store_url: str, tmp_path: Path) -> AsyncIterator[Admin]:
    """The app without its engine, on either backend, with an account and a shop (nothing sent anywhere)."""
    port = free_port()
    shop = {"id": "synthetic", "secret": SECRET, "callback_url": "http://127.0.0.1:9/", "alipay_account": "main"}
    raw = local_config(tmp_path / "unused.db", port, partner="2088101122136241", md5_key="stalls-test-md5-key",
                       gateway_url="http://127.0.0.1:9/gateway.do", platforms={"generic": {"shops": [shop]}})
    raw["store"] = {"url": store_url}
    app = create_app(parse_config(raw, env={}), run_engine=False)
    async with serve(app, port=port) as url, aiohttp.ClientSession() as http:
        store = app[ENGINE].store
        assert isinstance(store, SqlStore)
        yield Admin(url, store, http)


async def test_batches_are_listed_with_their_refunds_counted_and_one_batch_with_its_details(admin: Admin) -> None:
    """Found by bench/stalls.py: /-/batches?limit=1000 over a million refunds serialised a million details, 4 s
    of the loop. A batch in the list has its refunds counted (from an index); `/-/batches/{id}` lists them."""
    per_batch = 2500
    batch_ids = await synthetic.add_batches(admin.store, 6, now=time.time())
    await synthetic.add_refunds(admin.store, 6 * per_batch, now=time.time(), batch_ids=batch_ids)
    status, listed = await admin.call("GET", "/-/batches?limit=1000")
    assert status == 200 and [b["id"] for b in listed] == batch_ids[::-1]
    assert all(b["refunds"] == {"succeeded": per_batch} and "details" not in b for b in listed)
    _, first = await admin.call("GET", "/-/batches?limit=4")
    _, rest = await admin.call("GET", f"/-/batches?limit=4&before={first[-1]['id']}")
    assert [b["id"] for b in first + rest] == batch_ids[::-1]
    _, one = await admin.call("GET", f"/-/batches/{batch_ids[0]}")
    assert len(one["details"]) == per_batch
    _, refunds = await admin.call("GET", "/-/refunds?limit=1000")  # the page built a slice per loop turn
    assert [r["id"] for r in refunds] == sorted((r["id"] for r in refunds), reverse=True) and len(refunds) == 1000
    assert await admin.call("GET", "/-/refunds?state=batched") == (200, [])


async def test_a_retry_takes_a_bounded_list_of_ids_and_requeues_them_in_chunks(admin: Admin) -> None:
    await synthetic.add_refunds(admin.store, 2500, state="failed", report_state="dead", now=time.time())
    dead = [r["id"] for r in (await admin.call("GET", "/-/refunds?report_state=dead&limit=1000"))[1]]
    huge = json.dumps({"refund_ids": [dead[0]] * (MAX_RETRY_BODY_BYTES // 3)})
    status, problem = await admin.call("POST", "/-/dead-letters/retry", data=huge)
    assert (status, problem["type"]) == (413, PROBLEM + "body-too-large")
    assert (await admin.store.counts())["reports"] == {"dead": 2500}  # nothing changed
    status, answer = await admin.call("POST", "/-/dead-letters/retry", json={"refund_ids": dead + dead})
    assert (status, answer) == (200, {"requeued": 1000})
    assert await admin.call("POST", "/-/dead-letters/retry") == (200, {"requeued": 1500})


async def test_a_forged_notify_is_refused_without_decoding_what_it_need_not(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by bench/stalls.py: decoding a form is pure Python, about a second for a megabyte of `a=b&...` or
    of %-escapes, and an unsigned notify was decoded whole (twice) before its signature was checked."""
    (batch_id,) = await synthetic.add_batches(admin.store, 1, state=BatchState.SUBMITTED.value, now=time.time())
    batch = await admin.store.get_batch(batch_id)
    assert batch is not None
    form = {"content-type": "application/x-www-form-urlencoded"}
    fields = f"batch_no={batch.batch_no}&" + "a=b&" * MAX_NOTIFY_FIELDS
    escapes = f"notify_id=n1&batch_no={batch.batch_no}&result_details=" + "%E4" * (MAX_NOTIFY_ESCAPES + 1)
    signed_elsewhere = f"notify_id=n1&batch_no={batch.batch_no}&result_details=" + "%E4" * 10_000  # on a thread
    unknown = "batch_no=nothing&result_details=" + "%E4" * 300_000
    for body, why in ((fields, "fields or"), (escapes, "fields or"), (signed_elsewhere, "bad signature"),
                      (unknown, "unknown batch 'nothing'")):
        caplog.clear()
        status, text = await admin.call("POST", "/alipay/notify", data=body.encode(), headers=form)
        assert (status, text) == (200, "fail")
        assert "notify refused" in caplog.text and why in caplog.text
    assert (await admin.store.get_batch(batch_id)) == batch


def test_the_longest_stall_per_scenario_at_50000_refunds(pytestconfig: pytest.Config) -> None:
    """bench/stalls.py at 50,000 dead letters on SQLite (whose statements run in line): every scenario answers
    right; the figures go to the run's summary."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--refunds", "50000", "--backlog", "10000", "--query-batches", "5",
         "--idle-seconds", "2", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["wrong"] == [] and len(summary["scenarios"]) >= 15
    section = "longest event-loop stall per scenario, bench/stalls.py at 50,000 dead letters (SQLite)"
    for row in summary["scenarios"]:
        printed.record(pytestconfig, section, f"{row['scenario']:<66} {row['loop_stall_ms']:>7.1f} ms  (slowest "
                       f"GET /healthz {row['healthz_ms']:.1f} ms, longest GC {row['longest_gc_ms']:.1f} ms)")
