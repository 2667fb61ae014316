"""The dashboard's pages in a real browser, over the whole loop: refunds paid back by the Alipay sandbox and
reported to a simulated shop, one of them a dead letter while the shop refused our signature. An operator finds
a refund by its trade_no, reads its timeline (the notify, the report attempts), retries the dead letter and sees
it delivered; every page is photographed in English and in Chinese for the README (docs/images/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from refund_adapter_generic.shop import SimulatedShop

from refund_adapter.config import Config, parse_config
from refund_adapter.models import Refund
from refund_adapter.sandbox import SandboxConfig, TradeSeed
from refund_adapter.testing import adapter_loop, local_config, wait_until
from refund_adapter.web.keys import ENGINE
from tests.test_admin import (
    CLOSED_TRADE,
    DEADLINE,
    MD5_KEY,
    PAID_TRADE,
    PARTNER,
    SECRET,
    SHOP,
    WRONG_SECRET,
    Admin,
)

from .conftest import log_in, screenshot

LATE_TRADE = "2026112522000000000003"  # paid; its result reaches the shop only after the operator's retry


async def _refund(admin: Admin, platform_refund_id: str) -> Refund:
    refund = await admin.store.find_refund("generic", SHOP, platform_refund_id)
    assert refund is not None
    return refund


@pytest.fixture
async def operated(tmp_path: Path) -> AsyncIterator[Admin]:
    """Two refunds settled and reported (one paid back, one refused: the trade is closed), and a third paid back
    whose report is a dead letter: the shop refused our signature (401) until it was fixed."""
    trades = [TradeSeed(PAID_TRADE, Decimal("100.00")), TradeSeed(CLOSED_TRADE, Decimal("100.00"), status="closed"),
              TradeSeed(LATE_TRADE, Decimal("100.00"))]
    shop = SimulatedShop(SECRET)

    def config(port: int, gateway_url: str, shop_url: str) -> Config:
        shop_config = {"id": SHOP, "secret": SECRET, "callback_url": shop_url + "/callback", "alipay_account": "main"}
        raw = local_config(tmp_path / "refunds.db", port, partner=PARTNER, md5_key=MD5_KEY, gateway_url=gateway_url,
                           platforms={"generic": {"shops": [shop_config]}}, admin={"timezone": "Asia/Shanghai"})
        return parse_config(raw, env={})

    sandbox = SandboxConfig(partner=PARTNER, md5_key=MD5_KEY, time_scale=100_000.0, trades=trades)
    async with adapter_loop(config, sandbox=sandbox, shop=shop, request_timeout=DEADLINE) as loop:
        admin = Admin(loop.url, loop.store, shop, loop.http, loop.app[ENGINE])
        await admin.refund("r-ok", PAID_TRADE, "10.50")
        await admin.refund("r-closed", CLOSED_TRADE, "20.00")
        await admin.until_reports(delivered=2)
        shop.secret = WRONG_SECRET
        await admin.refund("r-late", LATE_TRADE, "88.00")
        await admin.until_reports(delivered=2, dead=1)
        shop.secret = SECRET  # fixed: the dead letter waits for the operator
        yield admin


async def test_an_operator_finds_a_refund_by_trade_no_and_reads_its_notify_and_reports(
    page: Any, operated: Admin
) -> None:
    await log_in(page, operated.url, next_path="/admin/refunds")
    await page.fill("input[name=q]", PAID_TRADE)
    async with page.expect_navigation():
        await page.click("form.filters button[type=submit]")
    rows = page.locator("main table tbody tr")
    assert await rows.count() == 1
    assert "¥10.50" in (await rows.first.text_content() or "")
    async with page.expect_navigation():
        await rows.first.locator("a").first.click()

    refund = await _refund(operated, "r-ok")
    assert page.url == f"{operated.url}/admin/refunds/{refund.id}"
    timeline = await page.text_content("table.timeline") or ""
    for event in ("Webhook accepted", "Put in a batch", "Batch submitted", "Alipay's result"):
        assert event in timeline
    assert "+0800" in timeline  # in the operator's zone (admin.timezone: Asia/Shanghai)
    notifies = await page.text_content("table.notifies") or ""
    assert "Refund notify" in notifies and "verified" in notifies and "not verified" not in notifies
    assert f"{PAID_TRADE}^10.50^SUCCESS" in notifies  # the raw result line Alipay sent for this refund
    reports = page.locator("table.reports tbody tr")
    assert await reports.count() == 1 and "delivered" in (await reports.first.text_content() or "")
    request = await page.text_content("table.request") or ""
    assert "refund_fastpay_by_platform_nopwd" in request and f"{PAID_TRADE}^10.50^damaged" in request
    assert "sign" not in {name.strip() for name in await page.locator("table.request th").all_text_contents()}
    assert "SUCCESS" in (await page.text_content("section.facts") or "")


async def test_an_operator_retries_a_dead_letter_and_the_shop_receives_it(page: Any, operated: Admin) -> None:
    late = await _refund(operated, "r-late")
    assert operated.shop.results.keys() == {"r-ok", "r-closed"}
    await log_in(page, operated.url, next_path="/admin/attention")
    dead = page.locator("main section").first
    assert await dead.locator("tbody tr").count() == 1
    assert "¥88.00" in (await dead.text_content() or "")
    async with page.expect_navigation():
        await page.click(f"form[action='/admin/refunds/{late.id}/retry'] button")
    assert page.url.endswith("/admin/attention?done=retried")
    assert "back in the outbox" in (await page.text_content("[role=status]") or "")

    async def delivered() -> bool:
        return "r-late" in operated.shop.results

    await wait_until(delivered, within=DEADLINE, what="the retried report at the shop")
    assert operated.shop.results["r-late"]["status"] == "succeeded"
    await page.goto(f"{operated.url}/admin/refunds/{late.id}")
    assert "Retried by the operator" in (await page.text_content("table.timeline") or "")
    outcomes = await page.locator("table.reports tbody tr td:nth-child(3)").all_text_contents()
    assert [o.strip() for o in outcomes] == ["dead letter", "delivered"]


PAGES = (  # (image name, path builder, the heading in English and in Chinese)
    ("summary", lambda ids: "/admin/", ("Overview", "概览")),
    ("refunds", lambda ids: "/admin/refunds", ("Refunds", "退款")),
    ("refund", lambda ids: f"/admin/refunds/{ids['refund']}", ("Refund", "退款")),
    ("batches", lambda ids: "/admin/batches", ("Batches", "批次")),
    ("batch", lambda ids: f"/admin/batches/{ids['batch']}", ("Batch", "批次")),
    ("attention", lambda ids: "/admin/attention", ("Needs attention", "待处理")),
)


async def test_every_page_in_english_and_in_chinese(page: Any, operated: Admin, screenshots_dir: Path) -> None:
    """Each page answers in both languages, headed in that language; the screenshots are the README's."""
    late = await _refund(operated, "r-late")
    assert late.batch_id is not None
    ids = {"refund": late.id, "batch": late.batch_id}
    await log_in(page, operated.url)
    for index, language in enumerate(("en", "zh_Hans")):
        if language != "en":
            async with page.expect_navigation():
                await page.click(f"a[lang={language.replace('_', '-')}]")
        for name, path, headings in PAGES:
            await page.goto(operated.url + path(ids))
            assert await page.get_attribute("html", "lang") == language.replace("_", "-")
            assert (await page.text_content("h1") or "").startswith(headings[index])
            await screenshot(page, screenshots_dir, f"{name}-{language}")
    assert "交易已关闭，不允许退款" in (await _page_text(page, operated.url + "/admin/refunds"))
    assert "¥98.50" in (await _page_text(page, operated.url + "/admin/"))  # refunded by the account: 10.50 + 88.00


async def _page_text(page: Any, url: str) -> str:
    await page.goto(url)
    return await page.text_content("main") or ""
