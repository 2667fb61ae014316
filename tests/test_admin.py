"""The operator's endpoints on the real app, after real refunds went through the real sandbox to a real shop."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from refund_adapter_generic.shop import SimulatedShop, signed_generic_webhook

from refund_adapter.channels.mapi.batch_no import batch_nos
from refund_adapter.config import Config, parse_config
from refund_adapter.engine.runtime import EngineContext
from refund_adapter.models import RefundRequest, ReportState
from refund_adapter.money import beijing_now
from refund_adapter.sandbox import SandboxConfig, TradeSeed
from refund_adapter.store import RefundStore
from refund_adapter.testing import ADMIN_HEADERS, adapter_loop, local_config, wait_until
from refund_adapter.web.keys import ENGINE

PARTNER = "2088101122136241"
MD5_KEY = "admin-endpoints-md5-key-0123456789"
SECRET = "whsec_" + base64.b64encode(b"admin-endpoints-shop-secret-32b!").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"a-shop-with-a-rotated-secret-32!").decode()
SHOP = "shop-1"
PAID_TRADE = "2026112522000000000001"
CLOSED_TRADE = "2026112522000000000002"
DEADLINE = 10.0
PROBLEM = "urn:refund-adapter:problem:"


def config(tmp_path: Path, port: int, gateway_url: str, shop_url: str) -> Config:
    shop = {"id": SHOP, "secret": SECRET, "callback_url": shop_url, "alipay_account": "main"}
    raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                       platforms={"generic": {"shops": [shop]}})
    return parse_config(raw, env={})


@dataclass
class Admin:
    url: str
    store: RefundStore
    shop: SimulatedShop
    http: aiohttp.ClientSession
    engine: EngineContext

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path, headers=ADMIN_HEADERS) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if resp.content_type.endswith("json") else text

    async def refund(self, refund_id: str, trade_no: str, amount: str = "10.50") -> None:
        """A refund webhook signed with the secret the adapter knows (whatever the shop currently expects)."""
        body = {"refund_id": refund_id, "order_id": f"o-{refund_id}", "trade_no": trade_no, "amount": amount,
                "currency": "CNY", "reason": "damaged", "paid_amount": "100.00"}
        headers, raw = signed_generic_webhook(SECRET, body, f"msg-{refund_id}")
        async with self.http.post(f"{self.url}/webhooks/generic/{SHOP}", data=raw, headers=headers) as resp:
            assert resp.status == 200, await resp.text()

    async def until_reports(self, **expected: int) -> None:
        async def settled() -> bool:
            return (await self.store.counts())["reports"] == expected

        await wait_until(settled, within=DEADLINE, what=f"reports {expected}")


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    trades = [TradeSeed(PAID_TRADE, Decimal("100.00")), TradeSeed(CLOSED_TRADE, Decimal("100.00"), status="closed")]
    sandbox_config = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0, trades=trades)
    shop = SimulatedShop(SECRET)

    def admin_config(port: int, gateway_url: str, shop_url: str) -> Config:
        return config(tmp_path, port, gateway_url, shop_url + "/callback")

    async with adapter_loop(admin_config, sandbox=sandbox_config, shop=shop, request_timeout=DEADLINE) as loop:
        yield Admin(loop.url, loop.store, shop, loop.http, loop.app[ENGINE])


@pytest.fixture
async def settled(admin: Admin) -> Admin:
    """One refund that Alipay paid back and one it refused (closed trade), both reported to the shop."""
    await admin.refund("r-ok", PAID_TRADE, "10.50")
    await admin.refund("r-closed", CLOSED_TRADE, "20.00")
    await admin.until_reports(delivered=2)
    return admin


async def test_healthz(admin: Admin) -> None:
    assert await admin.get("/healthz") == (200, {"status": "ok"})


async def test_plugins_lists_the_generic_platform_and_its_hooks(admin: Admin) -> None:
    status, plugins = await admin.get("/-/plugins")
    assert status == 200
    (generic,) = [p for p in plugins if p["name"] == "generic"]
    assert generic["hooks"] == ["register_platforms"]
    assert generic["distribution"] == "refund-adapter"
    assert generic["version"]


async def test_platforms_lists_each_shop_and_its_account(admin: Admin) -> None:
    status, platforms = await admin.get("/-/platforms")
    assert status == 200
    assert [(shop["id"], shop["alipay_account"]) for shop in platforms["generic"]] == [(SHOP, "main")]
    assert platforms["generic"][0]["callback_url"].endswith("/callback")


async def test_refunds_filtered_by_state_and_read_one_by_id(settled: Admin) -> None:
    status, succeeded = await settled.get("/-/refunds?state=succeeded")
    assert status == 200
    assert [(r["platform_refund_id"], r["state"], r["code"], r["amount"]) for r in succeeded] == [
        ("r-ok", "succeeded", "SUCCESS", "10.50")
    ]
    status, failed = await settled.get("/-/refunds?state=failed")
    assert [(r["platform_refund_id"], r["code"]) for r in failed] == [("r-closed", "TRADE_HAS_CLOSED")]
    status, everything = await settled.get("/-/refunds")
    assert [r["platform_refund_id"] for r in everything] == ["r-closed", "r-ok"]  # newest first
    assert all(r["report_state"] == "delivered" and r["review"] is None for r in everything)
    assert await settled.get("/-/refunds?review=true") == (200, [])
    assert [r["id"] for r in (await settled.get("/-/refunds?review=false"))[1]] == [r["id"] for r in everything]
    # Paging: one at a time, then what comes before it.
    _, page = await settled.get("/-/refunds?limit=1")
    _, before = await settled.get(f"/-/refunds?limit=1&before={page[0]['id']}")
    assert [r["platform_refund_id"] for r in page + before] == ["r-closed", "r-ok"]

    ok = succeeded[0]
    status, one = await settled.get(f"/-/refunds/{ok['id']}")
    assert status == 200 and {key: one[key] for key in ok} == ok
    assert [entry["kind"] for entry in one["timeline"]] == ["accepted", "batched", "submit", "result", "report"]
    assert [batch["batch_no"] for batch in one["batches"]] == [ok["batch_no"]]
    assert [event["kind"] for event in one["batches"][0]["events"]] == ["submit", "refund"]


async def test_bad_refund_queries_are_problems(settled: Admin) -> None:
    status, problem = await settled.get("/-/refunds/999999")
    assert (status, problem["type"]) == (404, PROBLEM + "unknown-refund")
    status, problem = await settled.get("/-/refunds/abc")
    assert (status, problem["type"]) == (404, PROBLEM + "not-found")
    status, problem = await settled.get("/-/refunds?state=paid")
    assert (status, problem["type"]) == (400, PROBLEM + "invalid-filter")
    status, problem = await settled.get("/-/refunds?report_state=bogus")
    assert (status, problem["type"]) == (400, PROBLEM + "invalid-filter")
    status, problem = await settled.get("/-/refunds?review=yes")
    assert (status, problem["type"]) == (400, PROBLEM + "invalid-filter")
    status, problem = await settled.get("/-/batches?state=nope")
    assert (status, problem["type"]) == (400, PROBLEM + "invalid-filter")
    status, problem = await settled.get("/-/refunds?limit=-1")
    assert (status, problem["status"]) == (400, 400)


async def test_batches_stats_and_metrics(settled: Admin) -> None:
    _, refunds = await settled.get("/-/refunds")
    ids = {r["platform_refund_id"]: r["id"] for r in refunds}
    status, batches = await settled.get("/-/batches")
    assert status == 200
    counted: Counter[str] = Counter()
    for batch in batches:
        counted.update(batch["refunds"])
    assert counted == {"succeeded": 1, "failed": 1}  # each batch's refunds counted, not listed
    details = [(b, (await settled.get(f"/-/batches/{b['id']}"))[1]["details"]) for b in batches]
    in_batches = {d["refund_id"]: (b["state"], b["batch_no"], d["amount"]) for b, ds in details for d in ds}
    by_id = {r["id"]: r["batch_no"] for r in refunds}
    assert in_batches == {
        ids["r-ok"]: ("completed", by_id[ids["r-ok"]], "10.50"),
        ids["r-closed"]: ("completed", by_id[ids["r-closed"]], "20.00"),
    }
    _, completed = await settled.get("/-/batches?state=completed")
    assert completed == batches

    status, stats = await settled.get("/-/stats")
    assert status == 200
    assert stats["refunds"] == {"succeeded": 1, "failed": 1}
    assert stats["reports"] == {"delivered": 2}
    assert sum(stats["batches"].values()) == len(batches) == stats["batches"]["completed"]

    status, text = await settled.get("/metrics")
    assert status == 200
    lines = set(text.splitlines())
    assert 'refund_adapter_refunds{state="succeeded"} 1.0' in lines
    assert 'refund_adapter_refunds{state="failed"} 1.0' in lines
    assert 'refund_adapter_reports{report_state="delivered"} 2.0' in lines
    assert f'refund_adapter_batches{{state="completed"}} {float(len(batches))}' in lines


async def test_dead_letters_are_visible_and_delivered_after_retry_once_the_shop_is_fixed(admin: Admin) -> None:
    admin.shop.secret = WRONG_SECRET  # the shop refuses our signature: 401, which retrying cannot fix
    await admin.refund("r-ok", PAID_TRADE)
    await admin.refund("r-closed", CLOSED_TRADE)
    await admin.until_reports(dead=2)
    assert admin.shop.rejected_signatures == 2  # straight to the dead letters: no blind retries
    status, dead = await admin.get("/-/refunds?report_state=dead")
    assert status == 200
    letters = {r["platform_refund_id"]: r for r in dead}
    assert {rid: (r["state"], r["report_state"]) for rid, r in letters.items()} == {
        "r-ok": ("succeeded", "dead"), "r-closed": ("failed", "dead")
    }
    assert all(r["report_error"].startswith("HTTP 401") for r in dead)
    assert admin.shop.results == {}

    retry = f"{admin.url}/-/dead-letters/retry"
    async with admin.http.post(retry, json={"refund_ids": "all"}, headers=ADMIN_HEADERS) as resp:
        assert resp.status == 400
        assert (await resp.json())["type"] == PROBLEM + "malformed-body"
    admin.shop.secret = SECRET  # fixed
    async with admin.http.post(retry, json={"refund_ids": [letters["r-ok"]["id"]]}, headers=ADMIN_HEADERS) as resp:
        assert (resp.status, await resp.json()) == (200, {"requeued": 1})
    await admin.until_reports(delivered=1, dead=1)
    assert admin.shop.results["r-ok"]["status"] == "succeeded"
    _, still_dead = await admin.get("/-/refunds?report_state=dead")
    assert [r["platform_refund_id"] for r in still_dead] == ["r-closed"]

    async with admin.http.post(retry, headers=ADMIN_HEADERS) as resp:  # no body: every dead letter
        assert (resp.status, await resp.json()) == (200, {"requeued": 1})
    await admin.until_reports(delivered=2)
    assert {rid: r["status"] for rid, r in admin.shop.results.items()} == {"r-ok": "succeeded", "r-closed": "failed"}
    assert admin.shop.deliveries == 2
    refund = await admin.store.get_refund(letters["r-closed"]["id"])
    assert refund is not None and refund.report_state is ReportState.DELIVERED
    assert await admin.get("/-/refunds?report_state=dead") == (200, [])


async def test_retry_of_an_empty_list_of_ids_requeues_nothing(admin: Admin) -> None:
    admin.shop.secret = WRONG_SECRET
    await admin.refund("r-ok", PAID_TRADE)
    await admin.until_reports(dead=1)
    async with admin.http.post(f"{admin.url}/-/dead-letters/retry", json={"refund_ids": []},
                               headers=ADMIN_HEADERS) as resp:
        assert (resp.status, await resp.json()) == (200, {"requeued": 0})


async def test_retry_with_a_body_that_is_not_json_is_a_problem(admin: Admin) -> None:
    headers = {"content-type": "application/json", **ADMIN_HEADERS}
    async with admin.http.post(f"{admin.url}/-/dead-letters/retry", data=b"all", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["type"] == PROBLEM + "malformed-body"


async def test_retry_with_a_list_body_does_not_requeue_every_dead_letter(admin: Admin) -> None:
    admin.shop.secret = WRONG_SECRET
    await admin.refund("r-ok", PAID_TRADE)
    await admin.refund("r-closed", CLOSED_TRADE)
    await admin.until_reports(dead=2)
    dead = await admin.store.list_refunds(report_state="dead")
    async with admin.http.post(f"{admin.url}/-/dead-letters/retry", json=[dead[0].id], headers=ADMIN_HEADERS) as resp:
        assert resp.status == 400  # the ids belong in {"refund_ids": [...]}; a bare list is a mistake


async def test_refund_id_beyond_64_bits_is_not_found(admin: Admin) -> None:
    status, problem = await admin.get("/-/refunds/" + "9" * 30)
    assert status == 404
    assert problem["type"] == PROBLEM + "unknown-refund"


async def test_refunds_are_found_by_any_of_their_ids_and_filters_and_paged_by_link(settled: Admin) -> None:
    _, everything = await settled.get("/-/refunds")
    ok, closed = {r["platform_refund_id"]: r for r in everything}["r-ok"], everything[0]

    async def found(query: str) -> list[str]:
        status, refunds = await settled.get("/-/refunds?" + query)
        assert status == 200, refunds
        return [r["platform_refund_id"] for r in refunds]

    assert await found(f"q={PAID_TRADE}") == ["r-ok"]
    assert await found("q=o-r-closed") == ["r-closed"]
    assert await found("q=r-ok") == ["r-ok"]
    assert await found(f"q={ok['batch_no']}") == [r["platform_refund_id"] for r in everything
                                                  if r["batch_no"] == ok["batch_no"]]
    assert await found(f"platform=generic&shop={SHOP}&account=main&state=failed") == ["r-closed"]
    assert await found("shop=another") == []
    assert await found("from=2000-01-01&to=2100-01-01T00:00:00%2B08:00") == ["r-closed", "r-ok"]
    assert await found("to=2000-01-01") == []
    async with settled.http.get(settled.url + "/-/refunds?limit=1", headers=ADMIN_HEADERS) as resp:
        assert [r["id"] for r in await resp.json()] == [closed["id"]]
        next_page = resp.links["next"]["url"]
    async with settled.http.get(next_page, headers=ADMIN_HEADERS) as resp:
        assert [r["id"] for r in await resp.json()] == [ok["id"]]
        previous = resp.links["prev"]["url"]
    async with settled.http.get(previous, headers=ADMIN_HEADERS) as resp:
        assert [r["id"] for r in await resp.json()] == [closed["id"]]


@pytest.mark.parametrize("query", [
    "/-/refunds?colour=red", "/-/refunds?state=failed&state=succeeded", "/-/refunds?limit=0",
    "/-/refunds?limit=1001", "/-/refunds?limit=1e3", "/-/refunds?before=abc", "/-/refunds?before=0",
    "/-/refunds?before=" + "9" * 30, "/-/refunds?before=1&after=2", "/-/refunds?from=yesterday",
    "/-/refunds?to=2026-13-01", "/-/refunds?q=" + "x" * 201, "/-/refunds?q=", "/-/refunds?shop=%00",
    "/-/refunds?report_state=lost", "/-/batches?before=-1", "/-/batches?after=1", "/-/dead-letters?state=failed",
    "/-/summary?window=7d", "/-/summary?window=24h&x=1",
])
async def test_malformed_queries_are_400_problems(admin: Admin, query: str) -> None:
    status, problem = await admin.get(query)
    assert status == 400 and problem["status"] == 400, (query, problem)
    assert problem["type"] in (PROBLEM + "invalid-filter", PROBLEM + "invalid-parameter")


async def test_unknown_ids_are_404_and_a_completed_batch_is_not_requeried(settled: Admin) -> None:
    _, batches = await settled.get("/-/batches")
    assert (await settled.get("/-/batches/999999"))[0] == 404
    assert (await settled.get("/-/batches/" + "9" * 30))[0] == 404
    for path in (f"/-/batches/{batches[0]['id']}/requery", "/-/batches/999999/requery", "/-/refunds/999999/retry",
                 f"/-/refunds/{(await settled.get('/-/refunds'))[1][0]['id']}/retry"):
        async with settled.http.post(settled.url + path, headers=ADMIN_HEADERS) as resp:
            problem = await resp.json()
            assert resp.status == (404 if "999999" in path else 409), (path, problem)
    status, batch = await settled.get(f"/-/batches/{batches[0]['id']}")
    assert status == 200 and batch["state"] == "completed" and batch["details"]
    assert [event["kind"] for event in batch["events"]] == ["submit", "refund"]
    request = batch["events"][0]["detail"]["request"]
    assert request["batch_no"] == batch["batch_no"] and request["partner"] == PARTNER
    assert "sign" not in request and MD5_KEY not in json.dumps(batch)


async def test_a_batch_in_review_is_requeried_through_the_reconciler(admin: Admin) -> None:
    """An account the config no longer names: the submitter leaves its batch in review; an operator asks again."""
    request = RefundRequest(platform="generic", shop=SHOP, platform_refund_id="r-ghost", order_id="o-ghost",
                            trade_no=PAID_TRADE, amount=Decimal("1.00"), currency="CNY", reason="",
                            alipay_account="ghost")
    await admin.store.accept([request], time.time())
    assert await admin.store.create_batch("ghost", 10, batch_nos(beijing_now(datetime.now(UTC)).date()), time.time())
    admin.engine.signals.submitter.set()

    async def in_review() -> bool:
        return [b["state"] for b in (await admin.get("/-/batches?state=review"))[1]] == ["review"]

    await wait_until(in_review, within=DEADLINE, what="the ghost account's batch in review")
    (batch,) = (await admin.get("/-/batches?state=review"))[1]
    async with admin.http.post(f"{admin.url}/-/batches/{batch['id']}/requery", headers=ADMIN_HEADERS) as resp:
        assert resp.status == 200 and (await resp.json())["state"] == "submitted"  # its refund was never sent

    async def queried() -> bool:
        events = (await admin.get(f"/-/batches/{batch['id']}"))[1]["events"]
        return [event["kind"] for event in events][-2:] == ["operator_requery", "query"]

    await wait_until(queried, within=DEADLINE, what="the reconciler's query after the operator's")


async def test_one_dead_letter_is_retried_and_listed_until_then(admin: Admin) -> None:
    admin.shop.secret = WRONG_SECRET
    await admin.refund("r-ok", PAID_TRADE)
    await admin.until_reports(dead=1)
    status, dead = await admin.get("/-/dead-letters")
    assert status == 200 and [r["platform_refund_id"] for r in dead] == ["r-ok"]
    admin.shop.secret = SECRET
    async with admin.http.post(f"{admin.url}/-/refunds/{dead[0]['id']}/retry", headers=ADMIN_HEADERS) as resp:
        assert (resp.status, await resp.json()) == (200, {"requeued": 1})
    await admin.until_reports(delivered=1)
    assert await admin.get("/-/dead-letters") == (200, [])
    _, refund = await admin.get(f"/-/refunds/{dead[0]['id']}")
    reports = [(e["kind"], e["detail"].get("status")) for e in refund["timeline"] if e["kind"] != "result"]
    assert reports[-3:] == [("report", "dead"), ("operator_retry", None), ("report", "delivered")]


async def test_the_summary_of_a_day_and_a_month(settled: Admin) -> None:
    status, day = await settled.get("/-/summary?window=24h")
    assert status == 200
    assert day["by_state"] == {"succeeded": 1, "failed": 1} and day["success_rate"] == 0.5
    assert day["refunded_by_account"] == {"main": "10.50"}
    assert day["webhook_to_reported_seconds"]["p95"] is not None and len(day["series"]) == 24
    _, month = await settled.get("/-/summary?window=30d")
    assert month["by_state"] == day["by_state"] and len(month["series"]) == 30
