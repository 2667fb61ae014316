"""The dashboard's pages over HTTP (the browser tests show them working end to end; these pin the edges): a filter
form's empty fields and its dates in the operator's zone, keyset pages both ways, a refused action that changes
nothing and says why, what is not found, and the chart's geometry."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from refund_adapter.config import parse_config
from refund_adapter.store import synthetic
from refund_adapter.web.app import create_app
from refund_adapter.web.chart import bar_chart
from refund_adapter.web.keys import ENGINE
from refund_adapter.web.pages import PAGE_SIZE
from tests.test_access import browser_like, login, raw_config

ZONE = "Asia/Shanghai"
ROW = re.compile(r'<a href="/admin/refunds/(\d+)">')


@pytest.fixture
async def client(tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any) -> Any:
    app = create_app(parse_config(raw_config(tmp_path, admin={"timezone": ZONE}), env={}), run_engine=False)
    client = await browser_like(app, aiohttp_server, aiohttp_client)
    await login(client)
    return client


def store(client: Any) -> Any:
    return client.server.app[ENGINE].store


async def rows(client: Any, path: str) -> tuple[list[int], str]:
    resp = await client.get(path)
    assert resp.status == 200, path
    html = await resp.text()
    return [int(i) for i in ROW.findall(html)], html


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', html)
    return None if found is None else found.group(1).replace("&amp;", "&")


async def test_pages_of_refunds_go_older_and_back_newer(client: Any) -> None:
    await synthetic.add_refunds(store(client), PAGE_SIZE + 10, now=time.time())
    first, html = await rows(client, "/admin/refunds?state=&shop=&q=")  # a form's empty fields filter nothing
    assert len(first) == PAGE_SIZE and first == sorted(first, reverse=True) and link(html, "prev") is None
    older = link(html, "next")
    assert older is not None and "state=" not in older
    second, html = await rows(client, older)
    assert len(second) == 10 and max(second) < min(first) and link(html, "next") is None
    newer = link(html, "prev")
    assert newer is not None
    back, _ = await rows(client, newer)
    assert back == first


async def test_dates_are_days_in_the_operators_zone(client: Any) -> None:
    """A refund created at 23:30 UTC is on the next day in Shanghai: a day's filter there finds it."""
    created = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    await synthetic.add_refunds(store(client), 1, now=created.timestamp())
    local_day = created.astimezone(ZoneInfo(ZONE)).date()
    found, html = await rows(client, f"/admin/refunds?from={local_day}&to={local_day + timedelta(days=1)}")
    assert len(found) == 1 and "2026-12-07 07:30:00 +0800" in html
    assert (await rows(client, f"/admin/refunds?to={local_day}"))[0] == []
    bad = await client.get("/admin/refunds?from=yesterday")
    assert bad.status == 400 and (await bad.json())["type"].endswith("invalid-filter")


async def test_a_refused_action_changes_nothing_and_says_why(client: Any) -> None:
    await synthetic.add_refunds(store(client), 1, state="succeeded", report_state="delivered", now=time.time())
    (refund_id,), html = await rows(client, "/admin/refunds")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert csrf is not None
    before = await store(client).get_refund(refund_id)
    resp = await client.post(f"/admin/refunds/{refund_id}/retry", allow_redirects=False,
                             data={"csrf_token": csrf.group(1), "next": "https://elsewhere.example/"})
    assert (resp.status, resp.headers["Location"]) == (303, "/admin/?done=not-a-dead-letter")  # never elsewhere
    assert await store(client).get_refund(refund_id) == before
    page = await (await client.get(f"/admin/refunds/{refund_id}?done=not-a-dead-letter")).text()
    assert "is not a dead letter" in page
    resp = await client.post("/admin/batches/999/requery", allow_redirects=False, data={"csrf_token": csrf.group(1)})
    assert resp.headers["Location"] == "/admin/batches/999?done=unknown-batch"
    missing = await client.get("/admin/batches/999")
    assert missing.status == 404 and "There is no such batch." in await missing.text()
    assert (await client.get("/admin/refunds/9223372036854775807")).status == 404


def test_the_busiest_bucket_reaches_the_top_and_states_stack_in_order() -> None:
    start = datetime(2026, 12, 7, tzinfo=UTC)
    chart = bar_chart([(start, {"succeeded": 3, "failed": 1}), (start + timedelta(hours=1), {}),
                       (start + timedelta(hours=2), {"submitted": 2})])
    busiest, empty, flying = chart.bars
    assert chart.peak == 4 and empty.segments == () and empty.total == 0
    assert [(stack, n) for stack, _, _, n in busiest.segments] == [("succeeded", 3), ("failed", 1)]
    assert busiest.segments[-1][1] == 0.0  # the top of the busiest bar is the top of the plot
    assert flying.segments[0][0] == "in_flight" and flying.segments[0][2] == chart.plot_height / 2
    assert bar_chart([]).bars == ()
