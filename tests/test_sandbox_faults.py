"""The sandbox page's fault switches for the money edges, through its JSON API as the page uses it: each
switch arms the emulator it names, refuses what it cannot do with a clear 4xx, and shows the operator what the
shop does about it (a test webhook credits nothing; a name nobody has is the buyer's mistake)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx

from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.run import run_sandbox

PAY_PAGE = re.compile(r"/pay/([0-9a-f-]{36})")


@asynccontextmanager
async def sandbox_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    lifecycle = Lifecycle()
    async with anyio.create_task_group() as group:
        urls = await group.start(partial(run_sandbox, data_dir=tmp_path / "sandbox", port=0, lifecycle=lifecycle))
        try:
            async with httpx.AsyncClient(base_url=f"{urls.page}/api", timeout=30) as http:
                yield http
        finally:
            lifecycle.request_stop("test over")


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
        tmp_path: Path) -> None:
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
            ({"kind": "fragment_fail", "endpoint": "submit", "code": "TRANSFER_NOT_SENT", "resign": True},
             "submit: TRANSFER_NOT_SENT (sign again) ×1"),
            ({"kind": "fragment_drop", "endpoint": "submit", "after_processing": True},
             "submit: answer lost after it took effect ×1"),
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
            ({"kind": "fragment_fail", "endpoint": "submit", "code": "ORDER_EXPIRED", "resign": True},
             400, "resign goes with TRANSFER_NOT_SENT only"),
            ({"kind": "fragment_unknown_users", "answer": "SHRUG"}, 400, "no answer 'SHRUG'"),
            ({"kind": "fragment_wrong_order"}, 409, "no order yet"),
            ({"kind": "fragment_lands_late", "seconds": -1}, 400, "seconds"),
        ]
        for body, status, said in bad:
            answer = await http.post("/faults", json=body)
            assert answer.status_code == status and said in answer.json()["error"], answer.text
