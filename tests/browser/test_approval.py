"""A password batch approved by the operator in a real browser: a refund webhook arrives for an account on
`channel: mapi_pwd`, its batch waits on the dashboard, the operator clicks Approve at Alipay, confirms with the
payment password on the sandbox's page, and sees the refund succeed and the shop told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refund_adapter.models import RefundState
from refund_adapter.testing import wait_until
from tests.test_admin import DEADLINE, SHOP
from tests.test_pwd_approval import PASSWORD, TRADE, Clock, running, sandbox_config

from .conftest import log_in, screenshot


async def test_an_operator_approves_a_batch_at_alipay_and_the_refund_succeeds(
    page: Any, tmp_path: Path, screenshots_dir: Path
) -> None:
    clock = Clock()
    async with running(tmp_path, clock, sandbox_config(clock)) as op:
        await op.admin.refund("r-pwd", TRADE, "10.50")
        batch = await op.waiting_batch()
        await log_in(page, op.admin.url)
        assert "1" in (await page.text_content("#awaiting-count") or "")  # the summary says something waits
        async with page.expect_navigation():
            await page.click("#awaiting-approval a")
        assert "¥10.50" in (await page.text_content("#awaiting-total") or "")
        row = page.locator("table.approvals tbody tr")
        assert await row.count() == 1 and batch.batch_no in (await row.first.text_content() or "")
        await screenshot(page, screenshots_dir, "approvals-en")
        async with page.expect_navigation():
            await page.click("a[lang=zh-Hans]")
        assert await page.text_content("h1") == "待审批"
        await screenshot(page, screenshots_dir, "approvals-zh_Hans")
        async with page.expect_navigation():
            await page.click("a[lang=en]")

        async with page.expect_navigation():  # the server's redirect to the signed link, made at the click
            await page.click(f"form[action='/admin/batches/{batch.id}/approve'] button")
        assert page.url.startswith(op.sandbox.url + "?") and "refund_fastpay_by_platform_pwd" in page.url
        assert await page.text_content("#batch_no") == batch.batch_no
        assert await page.text_content("#total") == "10.50"
        await page.fill("#password", PASSWORD)
        async with page.expect_navigation():
            await page.click("#confirm")
        assert "SUCCESS" in (await page.text_content("#result") or "")

        async def told() -> bool:
            return "r-pwd" in op.admin.shop.results

        await wait_until(told, within=DEADLINE, what="the shop told the result")
        assert op.admin.shop.results["r-pwd"]["status"] == "succeeded"
        refund = await op.store.find_refund("generic", SHOP, "r-pwd")
        assert refund is not None and refund.state is RefundState.SUCCEEDED
        await page.goto(f"{op.admin.url}/admin/refunds/{refund.id}")
        assert "succeeded" in (await page.text_content("section.facts") or "")
        await page.goto(f"{op.admin.url}/admin/batches/{batch.id}")
        assert "Approval link made" in (await page.text_content("table.timeline") or "")
        await page.goto(f"{op.admin.url}/admin/approvals")
        assert await page.text_content("#awaiting-count") == "0"
