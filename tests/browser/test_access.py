"""The dashboard's access in a real browser: the login, the session cookie Chromium keeps over plain http on
127.0.0.1, the redirect without a session, a form without its CSRF token refused, and the language switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Dashboard, log_in, screenshot


async def test_without_a_session_the_dashboard_sends_to_the_login_page(
    page: Any, dashboard: Dashboard, screenshots_dir: Path
) -> None:
    await page.goto(f"{dashboard.url}/admin/")
    assert page.url == f"{dashboard.url}/admin/login?next=/admin/"
    assert await page.text_content("h1") == "Log in"
    await screenshot(page, screenshots_dir, "login-en")
    await page.fill("#token", "not-the-token")
    async with page.expect_navigation():
        await page.click("form[action='/admin/login'] button[type=submit]")
    assert "not the right one" in (await page.text_content("[role=alert]") or "")
    await log_in(page, dashboard.url)
    assert page.url == f"{dashboard.url}/admin/"
    assert await page.text_content("h1") == "Overview"
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["ra_session"]  # kept although Secure: Chromium counts 127.0.0.1 as a secure origin
    assert (session["secure"], session["httpOnly"], session["sameSite"], session["path"]) == (True, True, "Strict",
                                                                                               "/admin")

    async with page.expect_navigation():
        await page.click("form[action='/admin/logout'] button")
    assert page.url.startswith(f"{dashboard.url}/admin/login")
    await page.goto(f"{dashboard.url}/admin/")
    assert page.url.startswith(f"{dashboard.url}/admin/login")


async def test_a_form_without_its_csrf_token_is_refused(page: Any, dashboard: Dashboard) -> None:
    await log_in(page, dashboard.url)
    await page.eval_on_selector("form[action='/admin/logout'] input[name=csrf_token]", "e => e.remove()")
    async with page.expect_navigation():
        await page.click("form[action='/admin/logout'] button")
    assert "csrf-token-invalid" in (await page.text_content("body") or "")
    await page.goto(f"{dashboard.url}/admin/")  # still logged in: the refused logout changed nothing
    assert await page.text_content("h1") == "Overview"

    await page.context.clear_cookies()
    await page.goto(f"{dashboard.url}/admin/login")
    await page.eval_on_selector("form[action='/admin/login'] input[name=csrf_token]", "e => e.value = 'forged'")
    await page.fill("#token", "test-admin-token-0123456789")
    async with page.expect_navigation():
        await page.click("form[action='/admin/login'] button[type=submit]")
    assert "csrf-token-invalid" in (await page.text_content("body") or "")
    assert "ra_session" not in {c["name"] for c in await page.context.cookies()}


async def test_switching_to_chinese_translates_the_page(page: Any, dashboard: Dashboard, screenshots_dir: Path) -> None:
    await log_in(page, dashboard.url)
    async with page.expect_navigation():
        await page.click("a[lang=zh-Hans]")
    assert page.url == f"{dashboard.url}/admin/"
    assert await page.text_content("h1") == "概览"
    assert await page.get_attribute("html", "lang") == "zh-Hans"
    assert await page.text_content("form[action='/admin/logout'] button") == "退出登录"
    await page.context.clear_cookies(name="ra_session")
    await page.goto(f"{dashboard.url}/admin/")
    assert await page.text_content("h1") == "登录"  # the choice outlives the session
    await screenshot(page, screenshots_dir, "login-zh_Hans")
    async with page.expect_navigation():
        await page.click("a[lang=en]")
    assert await page.text_content("h1") == "Log in"


async def test_the_browsers_language_chooses_the_page_language(browser: Any, dashboard: Dashboard) -> None:
    context = await browser.new_context(locale="zh-CN")
    try:
        page = await context.new_page()
        await page.goto(f"{dashboard.url}/admin/login")
        assert await page.text_content("h1") == "登录"
    finally:
        await context.close()
