"""The sandbox page's fault switches for the money edges, through its JSON API as the page uses it: each
switch arms the emulator it names, refuses what it cannot do with a clear 4xx, and shows the operator what the
shop does about it (a test webhook credits nothing; a name nobody has is the buyer's mistake)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.async_api import expect

from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.run import SandboxUrls, run_sandbox
from tests.sandbox.test_sandbox_browser import WAIT_MS, chat_page, chromium_missing

PAY_PAGE = re.compile(r"/pay/([0-9a-f-]{36})")


@asynccontextmanager
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SandboxUrls]]:
    """The page's API, and where each emulator listens (to see from outside what a switch did)."""
    lifecycle = Lifecycle()
    async with anyio.create_task_group() as group:
        urls = await group.start(partial(run_sandbox, data_dir=tmp_path / "sandbox", port=0, lifecycle=lifecycle))
        try:
            async with httpx.AsyncClient(base_url=f"{urls.page}/api", timeout=30) as http:
                yield http, urls
        finally:
            lifecycle.request_stop("test over")


@asynccontextmanager
async def sandbox_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with sandbox(tmp_path) as (http, _):
        yield http


async def bot_says(http: httpx.AsyncClient, user_id: int, text: str, *, after: int = 0) -> dict[str, Any]:
    """The first bot message after message `after` whose text contains `text`."""
    with anyio.fail_after(20):
        while True:
            messages = (await http.get(f"/chats/{user_id}/messages")).json()["messages"]
            for message in messages:
                if message["from"] == "bot" and message["id"] > after and text in message["html"]:
                    return message
            await anyio.sleep(0.1)


async def say(http: httpx.AsyncClient, user_id: int, text: str) -> int:
    """Send `text`; the id of the newest message before it."""
    messages = (await http.get(f"/chats/{user_id}/messages")).json()["messages"]
    assert (await http.post(f"/chats/{user_id}/messages", json={"text": text})).status_code == 201
    return max([0, *(message["id"] for message in messages)])


async def balance(http: httpx.AsyncClient, user_id: int) -> str:
    return str((await http.get("/panel", params={"user_id": user_id})).json()["balance"]["available"])


async def test_heleket_test_webhook_from_the_payment_page_credits_nothing_until_the_invoice_is_paid(
    tmp_path: Path,
) -> None:
    async with sandbox_api(tmp_path) as http:
        user = (await http.post("/users", json={"first_name": "Ada"})).json()["id"]
        await bot_says(http, user, "", after=await say(http, user, "/start"))
        invoice = await bot_says(http, user, "5.00", after=await say(http, user, "/recharge 5"))
        urls = [button["url"] for row in invoice["keyboard"] for button in row if button["url"]]
        [uuid] = [match.group(1) for url in urls if (match := PAY_PAGE.search(url))]

        sent = await http.post(f"/invoices/{uuid}/test-webhook")
        assert sent.status_code == 200 and sent.json()["status"] == "check"
        await anyio.sleep(2.0)  # the signed "paid" reached the shop, which asked Heleket and found it unpaid
        assert await balance(http, user) == "0.00 USD"
        armed = (await http.get("/panel")).json()["switches"]["armed"]
        assert any("test webhook" in line for line in armed)

        assert (await http.post(f"/invoices/{uuid}/pay")).status_code == 200
        with anyio.fail_after(20):
            while await balance(http, user) != "5.00 USD":
                await anyio.sleep(0.1)


async def test_the_unknown_username_switch_answers_the_buyer_in_either_shape(tmp_path: Path) -> None:
    async with sandbox_api(tmp_path) as http:
        user = (await http.post("/users", json={"first_name": "Boris"})).json()["id"]
        await bot_says(http, user, "", after=await say(http, user, "/start"))
        for answer in ("USER_NOT_FOUND", "found_false", "RECIPIENT_NOT_FOUND"):
            flipped = await http.post("/faults", json={"kind": "fragment_unknown_users", "answer": answer})
            assert flipped.status_code == 200 and flipped.json()["fragment_unknown_users"] == answer
            after = await say(http, user, "/buy_stars 50 @nobody_here")
            assert "@nobody_here" in (await bot_says(http, user, "nobody_here", after=after))["html"]
            messages = (await http.get(f"/chats/{user}/messages")).json()["messages"]
            assert not any("cannot be reached" in m["html"] for m in messages if m["id"] > after)


async def test_every_money_edge_switch_arms_its_emulator_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    async with sandbox_api(tmp_path) as http:
        good = [
            (
                {"kind": "fragment_fail", "endpoint": "submit", "code": "TRANSFER_NOT_SENT", "resign": True},
                "submit: TRANSFER_NOT_SENT (sign again) ×1",
            ),
            (
                {"kind": "fragment_drop", "endpoint": "submit", "after_processing": True},
                "submit: answer lost after it took effect ×1",
            ),
            ({"kind": "fragment_lands_late", "seconds": 30}, "next payment lands 30 s late"),
            ({"kind": "fragment_slow_lookups", "seconds": 5, "times": 3}, "user_info: 5 s late ×3"),
        ]
        for body, armed in good:
            answer = await http.post("/faults", json=body)
            assert answer.status_code == 200 and answer.json()["armed"][0] == armed
        limited = await http.post("/faults", json={"kind": "heleket_rate_limit", "on": True})
        assert limited.status_code == 200 and limited.json()["heleket_rate_limited"] is True
        slow = await http.post("/faults", json={"kind": "heleket_info_latency", "seconds": 1.5})
        assert slow.status_code == 200 and slow.json()["heleket_info_latency"] == 1.5

        bad = [
            (
                {"kind": "fragment_fail", "endpoint": "submit", "code": "ORDER_EXPIRED", "resign": True},
                400,
                "resign goes with TRANSFER_NOT_SENT only",
            ),
            ({"kind": "fragment_unknown_users", "answer": "SHRUG"}, 400, "no answer 'SHRUG'"),
            ({"kind": "fragment_wrong_order"}, 409, "no order yet"),
            ({"kind": "fragment_lands_late", "seconds": -1}, 400, "seconds"),
        ]
        for body, status, said in bad:
            answer = await http.post("/faults", json=body)
            assert answer.status_code == status and said in answer.json()["error"], answer.text


async def ton_usd(urls: SandboxUrls) -> httpx.Response:
    """Heleket's TON exchange-rate list, as the shop asks for it."""
    async with httpx.AsyncClient(base_url=urls.heleket) as heleket:
        return await heleket.get("/v1/exchange-rate/TON/list")


async def test_the_price_switches_move_fragments_ton_cost_and_helekets_rate_and_refuse_bad_values(
    tmp_path: Path,
) -> None:
    async with sandbox(tmp_path) as (http, urls):
        moved = await http.post("/faults", json={"kind": "heleket_ton_rate", "usd": "4.5"})
        assert moved.status_code == 200 and moved.json()["heleket_ton_usd"] == "4.5"
        [usd] = [r["course"] for r in (await ton_usd(urls)).json()["result"] if r["to"] == "USD"]
        assert Decimal(usd) == Decimal("4.5")
        gone = await http.post("/faults", json={"kind": "heleket_ton_rate", "usd": None})
        assert gone.status_code == 200 and gone.json()["heleket_ton_usd"] is None
        assert (await ton_usd(urls)).status_code == 404  # no TON rate at all: the shop must not sell blind
        assert (await http.post("/faults", json={"kind": "heleket_ton_rate", "usd": "3"})).status_code == 200

        premium = await http.post("/faults", json={"kind": "fragment_ton_cost", "ton": "2.5", "months": 6})
        assert premium.status_code == 200 and premium.json()["fragment_premium_ton"]["6"] == "2.5"
        star = await http.post("/faults", json={"kind": "fragment_ton_cost", "ton": "0.002"})
        assert star.status_code == 200 and star.json()["fragment_ton_per_star"] == "0.002"

        # The next order is priced at the new cost: 50 stars at 0.002 TON, plus Fragment's 2 % fee.
        user = (await http.post("/users", json={"first_name": "Cleo"})).json()["id"]
        await bot_says(http, user, "", after=await say(http, user, "/start"))
        invoice = await bot_says(http, user, "5.00", after=await say(http, user, "/recharge 5"))
        [uuid] = [
            match.group(1)
            for row in invoice["keyboard"]
            for button in row
            if button["url"] and (match := PAY_PAGE.search(button["url"]))
        ]
        assert (await http.post(f"/invoices/{uuid}/pay")).status_code == 200
        with anyio.fail_after(20):
            while await balance(http, user) != "5.00 USD":
                await anyio.sleep(0.1)
        after = await say(http, user, "/buy_stars 50 @someone")
        with anyio.fail_after(20):  # "Looking up @someone…" first, then the same message asks to confirm
            while not (
                found := [
                    (message, button["callback_data"])
                    for message in (await http.get(f"/chats/{user}/messages")).json()["messages"]
                    if message["from"] == "bot" and message["id"] > after
                    for row in message["keyboard"]
                    for button in row
                    if "Confirm" in button["text"]
                ]
            ):
                await anyio.sleep(0.1)
        [(confirm, data)] = found
        assert (
            await http.post(f"/chats/{user}/press", json={"message_id": confirm["id"], "callback_data": data})
        ).status_code == 200
        with anyio.fail_after(20):
            while not (orders := (await http.get("/panel")).json()["orders"]):
                await anyio.sleep(0.1)
        assert Decimal(orders[0]["cost"]) == Decimal("0.102")

        bad = [
            ({"kind": "fragment_ton_cost", "ton": "0"}, "a star's TON cost must be a positive amount"),
            ({"kind": "fragment_ton_cost", "ton": "-0.01"}, "a star's TON cost must be a positive amount"),
            ({"kind": "fragment_ton_cost", "ton": "NaN"}, "a star's TON cost must be a positive amount"),
            ({"kind": "fragment_ton_cost", "ton": "5"}, "up to 1"),
            ({"kind": "fragment_ton_cost", "ton": "2", "months": 4}, "Premium comes in 3, 6, 12 months, not 4"),
            ({"kind": "fragment_ton_cost", "ton": "cheap"}, "Invalid decimal"),
            ({"kind": "heleket_ton_rate", "usd": "0"}, "TON's USD price must be a positive amount"),
            ({"kind": "heleket_ton_rate", "usd": "Infinity"}, "TON's USD price must be a positive amount"),
            ({"kind": "heleket_ton_rate"}, "usd"),
        ]
        for body, said in bad:
            answer = await http.post("/faults", json=body)
            assert answer.status_code == 400 and said in answer.json()["error"], answer.text
        switches = (await http.get("/panel")).json()["switches"]  # nothing moved by a refused value
        assert (
            switches["fragment_ton_per_star"],
            switches["fragment_premium_ton"]["6"],
            switches["heleket_ton_usd"],
        ) == ("0.002", "2.5", "3")
        [usd] = [r["course"] for r in (await ton_usd(urls)).json()["result"] if r["to"] == "USD"]
        assert Decimal(usd) == Decimal(3)


@pytest.mark.skipif(bool(chromium_missing()), reason=chromium_missing() or "-")
async def test_the_page_price_controls_move_the_emulators_as_clicked(tmp_path: Path) -> None:
    async with sandbox(tmp_path) as (_, urls), chat_page(urls) as page:
        star = page.locator("#fragment-star-cost")
        await star.locator("input[name=ton]").fill("0.003")
        await star.get_by_role("button", name="Set").click()
        premium = page.locator("#fragment-premium-cost")
        await premium.locator("select[name=months]").select_option("12")
        await premium.locator("input[name=ton]").fill("7.5")
        await premium.get_by_role("button", name="Set").click()
        now = page.locator("#prices-now")
        await expect(now).to_contain_text("0.003 TON per star", timeout=WAIT_MS)
        await expect(now).to_contain_text("12 m 7.5", timeout=WAIT_MS)

        await page.locator("#heleket-no-rate").click()
        await expect(now).to_contain_text("no TON rate", timeout=WAIT_MS)
        assert (await ton_usd(urls)).status_code == 404
        rate = page.locator("#heleket-ton-rate")
        await rate.locator("input[name=usd]").fill("3.75")
        await rate.get_by_role("button", name="Set").click()
        await expect(now).to_contain_text("1 TON = 3.75 USD", timeout=WAIT_MS)
        [usd] = [r["course"] for r in (await ton_usd(urls)).json()["result"] if r["to"] == "USD"]
        assert Decimal(usd) == Decimal("3.75")


async def test_a_second_test_user_joins_through_the_first_ones_link_and_the_sample_promo_code_credits(
    tmp_path: Path,
) -> None:
    async with sandbox_api(tmp_path) as http:
        setup = (await http.get("/setup")).json()
        assert set(setup["promo_codes"]) == {"SANDBOX", "SAVE10"}
        ada = (await http.post("/users", json={"first_name": "Ada"})).json()["id"]
        too_early = await http.post(f"/users/{ada}/invitee", json={"first_name": "Boris"})
        assert too_early.status_code == 409 and "send /start first" in too_early.json()["error"]

        await bot_says(http, ada, "", after=await say(http, ada, "/start"))
        boris = await http.post(f"/users/{ada}/invitee", json={"first_name": "Boris", "language_code": "ru"})
        assert boris.status_code == 201
        boris_id = boris.json()["id"]
        started = (await http.get(f"/chats/{boris_id}/messages")).json()["messages"]
        assert started[0]["from"] == "user" and re.search(r"/start</a> r[A-Za-z0-9]{8}$", started[0]["html"])
        await bot_says(http, boris_id, "")  # the welcome
        await bot_says(http, ada, "Someone just joined through your link")
        joined = await bot_says(http, ada, "Joined through your link: 1", after=await say(http, ada, "/referral"))
        assert "t.me/" in joined["html"]

        await bot_says(http, ada, "SANDBOX", after=await say(http, ada, "/promo sandbox"))
        with anyio.fail_after(20):
            while await balance(http, ada) != "1.00 USD":
                await anyio.sleep(0.1)
