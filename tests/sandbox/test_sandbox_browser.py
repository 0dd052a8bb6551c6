"""The sandbox's web chat in a real headless Chromium: what an operator trying the shop would click."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from shopbot.fulfilment.browser import CHROMIUM_FLAGS
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.run import SandboxUrls, run_sandbox

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 20_000


def chromium_missing() -> str:
    """Why these tests cannot run here, or "" when they can (the same reason as test_cookies.py's)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return ""
    return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"


pytestmark = pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "-")


@asynccontextmanager
async def sandbox(tmp_path: Path) -> AsyncIterator[SandboxUrls]:
    lifecycle = Lifecycle()
    async with anyio.create_task_group() as group:
        urls = await group.start(partial(run_sandbox, data_dir=tmp_path / "sandbox", port=0, lifecycle=lifecycle))
        try:
            yield urls
        finally:
            lifecycle.request_stop("test over")


@asynccontextmanager
async def chat_page(urls: SandboxUrls) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_FLAGS, "--headless"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(urls.page)
            yield page
        finally:
            with anyio.move_on_after(10, shield=True):
                await browser.close()


def last_bot_message(page: Page):  # type: ignore[no-untyped-def]
    return page.locator(".msg.bot").last


async def start_chat_and_top_up(page: Page, name: str, username: str) -> None:
    """Create a user, /start, Top up with the first preset, pay on the Heleket page, see the credit."""
    form = page.locator("#new-user")
    await form.locator("input[name=first_name]").fill(name)
    await form.locator("input[name=username]").fill(username)
    await form.locator("select[name=language_code]").select_option("en")
    await form.get_by_role("button", name="Create user").click()
    await send(page, "/start")
    await expect(last_bot_message(page)).to_contain_text(f"Welcome to the shop, {name}!", timeout=WAIT_MS)
    # The bot's HTML is rendered, not shown as markup.
    await expect(last_bot_message(page).locator("b", has_text=name)).to_be_visible()

    await page.locator(".msg.bot .kb", has_text="Top up").last.click()
    await expect(last_bot_message(page)).to_contain_text("Choose an amount", timeout=WAIT_MS)
    await last_bot_message(page).locator("button.kb").first.click()
    pay_link = page.locator("a.kb", has_text="Pay").last
    await expect(pay_link).to_be_visible(timeout=WAIT_MS)
    assert (await pay_link.get_attribute("href") or "").startswith("/pay/")
    async with page.context.expect_page() as opened:
        await pay_link.click()
    heleket = await opened.value
    await expect(heleket.locator("#pay-status")).to_have_text("check", timeout=WAIT_MS)
    await heleket.locator("#pay-pay").click()
    await expect(heleket.locator("#pay-status")).to_have_text("paid", timeout=WAIT_MS)
    await heleket.close()
    await expect(page.locator(".msg.bot", has_text="has arrived").last).to_contain_text("5.00 USD", timeout=WAIT_MS)
    await expect(page.locator("#balance")).to_contain_text("5.00 USD", timeout=WAIT_MS)


async def send(page: Page, text: str) -> None:
    await page.locator("#text").fill(text)
    await page.locator("#text").press("Enter")
    await expect(page.locator(".msg.user").last).to_contain_text(text, timeout=WAIT_MS)


async def buy_stars_for_best_friend(page: Page) -> None:
    await send(page, "/buy_stars 50 @best_friend")
    confirm = page.locator(".msg.bot button.kb", has_text="Confirm").last
    await expect(confirm).to_be_visible(timeout=WAIT_MS)
    await confirm.click()
    await expect(page.locator(".msg.bot", has_text="is queued").last).to_be_visible(timeout=WAIT_MS)


async def test_top_up_pay_on_heleket_and_buy_stars_for_a_friend(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as urls, chat_page(urls) as page:
        await start_chat_and_top_up(page, "Ada", "@ada_buyer")
        await buy_stars_for_best_friend(page)
        await expect(page.locator(".msg.bot", has_text="🎉 Delivered").last).to_contain_text("50", timeout=WAIT_MS)
        order = page.locator("#orders tr", has_text="@best_friend")
        await expect(order).to_contain_text("50 stars", timeout=WAIT_MS)
        await expect(order.locator(".status")).to_have_text("success", timeout=WAIT_MS)
        await expect(page.locator("#payments .status").first).to_have_text("success", timeout=WAIT_MS)
        await expect(page.locator("#balance")).to_contain_text("4.00 USD", timeout=WAIT_MS)
        screenshot = tmp_path / "sandbox-chat.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        print(f"screenshot: {screenshot}")
        assert screenshot.stat().st_size > 10_000


async def test_a_fragment_failure_switched_on_in_the_page_ends_in_a_refund(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as urls, chat_page(urls) as page:
        await start_chat_and_top_up(page, "Boris", "boris_buyer")
        faults = page.locator("#fragment-fail")
        await faults.locator("select[name=endpoint]").select_option("create_order")
        await faults.locator("select[name=code]").select_option("USER_NOT_FOUND")
        await faults.get_by_role("button", name="Fail next").click()
        await expect(page.locator("#armed")).to_contain_text("create_order: USER_NOT_FOUND", timeout=WAIT_MS)
        await buy_stars_for_best_friend(page)
        refund = page.locator(".msg.bot", has_text="was refunded").last
        await expect(refund).to_contain_text("Fragment could not find the recipient", timeout=WAIT_MS)
        await expect(page.locator("#balance")).to_contain_text("5.00 USD", timeout=WAIT_MS)


async def test_the_api_answers_bad_input_with_a_clear_4xx(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as urls, httpx.AsyncClient(base_url=urls.page) as http:
        unknown_user = await http.post("/api/chats/5/messages", json={"text": "/start"})
        assert (unknown_user.status_code, unknown_user.json()) == (404, {"error": "no test user 5: create one first"})
        not_json = await http.post("/api/users", content=b"{nope")
        assert not_json.status_code == 400 and not_json.json()["error"].startswith("the body is not JSON")
        bad_language = await http.post("/api/users", json={"first_name": "Ada", "language_code": "de"})
        assert bad_language.status_code == 400 and "language_code" in bad_language.json()["error"]
        unknown_invoice = await http.post("/api/invoices/0e2b7b4e-8c1c-4a5e-9d2e-111111111111/pay")
        assert unknown_invoice.status_code == 404
        assert unknown_invoice.json() == {"error": "no Heleket invoice 0e2b7b4e-8c1c-4a5e-9d2e-111111111111"}
        bad_fault = await http.post(
            "/api/faults", json={"kind": "fragment_fail", "endpoint": "create_order", "code": "NOPE"}
        )
        assert bad_fault.status_code == 400 and "no Fragment error code 'NOPE'" in bad_fault.json()["error"]
        # The page's address also answers the shop's own endpoints.
        assert (await http.get("/health")).status_code == 200
