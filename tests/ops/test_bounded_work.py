"""Bounded work: a crowd of updates, a busy database or a dead Telegram never piles work up without end.

Webhook mode runs the real shop on a real port with the Telegram emulator; the route is hit over HTTP.
Polling mode is watched through the getUpdates calls the emulator records. The database pool is the
shop's own, with one connection, held by the test.
"""

from __future__ import annotations

import json
import logging

import anyio
import httpx
import pytest

from shopbot.bot.webhook import MAX_BODY
from shopbot.config.schema import ApiConfig, CircuitBreakerConfig, DatabaseConfig, WebConfig
from shopbot.config.secret import Secret
from shopbot.db.pool import DatabaseBusyError, open_pool
from shopbot.web.api_auth import mint_token
from tests.shop_harness import TOKEN, ShopUnderTest, free_port, running_shop

pytestmark = pytest.mark.anyio
SECRET = "hook_Secret-123"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
BUSY_EN = "The shop is very busy right now. Please try again in"


def start_update(update_id: int, user_id: int) -> bytes:
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": user_id, "type": "private"},
                "text": "/start",
                "from": {"id": user_id, "is_bot": False, "first_name": "Crowd", "language_code": "en"},
            },
        }
    ).encode()


def webhook_shop(database_url: str, **overrides: object):  # type: ignore[no-untyped-def]
    port = free_port()
    telegram_keys = {"mode": "webhook", "webhook_secret": Secret(SECRET), **overrides.pop("telegram_keys", {})}
    return running_shop(
        database_url,
        web=WebConfig(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}"),
        telegram_keys=telegram_keys,
        **overrides,
    )


async def raw_answer(shop: ShopUnderTest, request: bytes) -> str:
    """The start of the shop's answer to a request sent as raw bytes (httpx will not send a lying body)."""
    async with await anyio.connect_tcp("127.0.0.1", shop.shop.web_port) as raw:
        await raw.send(request)
        return (await raw.receive()).decode(errors="replace")


async def test_a_webhook_beyond_the_updates_in_hand_is_answered_503_and_taken_once_there_is_room(
    database_url: str,
) -> None:
    async with webhook_shop(database_url, telegram_keys={"max_concurrent_updates": 2}) as shop:
        shop.telegram.delay_next("sendMessage", 3)
        shop.telegram.delay_next("sendMessage", 3)  # both updates in hand stay there a while
        first = await shop.http.post("/webhook/telegram", content=start_update(9001, 401), headers=HEADERS)
        second = await shop.http.post("/webhook/telegram", content=start_update(9002, 402), headers=HEADERS)
        third = await shop.http.post("/webhook/telegram", content=start_update(9003, 403), headers=HEADERS)
        assert (first.status_code, second.status_code) == (200, 200)
        assert third.status_code == 503 and third.json() == {"error": "busy"}  # Telegram delivers it again
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 401, timeout=10)
        with anyio.fail_after(10):  # Telegram's redelivery, once an update in hand is done
            while (
                again := await shop.http.post("/webhook/telegram", content=start_update(9003, 403), headers=HEADERS)
            ).status_code == 503:
                await anyio.sleep(0.05)
        assert again.status_code == 200
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 403, timeout=10)
        assert sum(c.method == "sendMessage" and c.params["chat_id"] == 403 for c in shop.telegram.calls) == 1


async def test_an_oversized_telegram_webhook_is_refused_while_it_is_read(database_url: str) -> None:
    async with webhook_shop(database_url) as shop:
        head = f"POST /webhook/telegram HTTP/1.1\r\nHost: shop\r\nX-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n"
        with anyio.fail_after(10):
            # A body that claims 50 MiB is refused from its header, before a byte of it is read.
            declared = await raw_answer(shop, f"{head}Content-Length: {50 << 20}\r\n\r\n{{}}".encode())
            # A chunked body that never ends is refused as soon as it passes the ceiling.
            endless = await raw_answer(
                shop,
                f"{head}Transfer-Encoding: chunked\r\n\r\n{MAX_BODY + 1:x}\r\n".encode()
                + b" " * (MAX_BODY + 1)
                + b"\r\n",
            )
        assert declared.startswith("HTTP/1.1 413") and endless.startswith("HTTP/1.1 413")
        assert '{"error":"body_too_large"}' in endless
        fine = await shop.http.post("/webhook/telegram", content=start_update(9101, 411), headers=HEADERS)
        assert fine.status_code == 200
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 411)


async def test_while_the_telegram_circuit_is_open_webhook_updates_stay_with_telegram(database_url: str) -> None:
    breaker = CircuitBreakerConfig(failure_threshold=2, timeout=1.0, success_threshold=1)
    async with webhook_shop(database_url, circuit_breaker=breaker) as shop:
        shop.telegram.fail_next("sendMessage", error_code=500)
        shop.telegram.fail_next("sendMessage", error_code=500)  # the reply and the apology: the circuit opens
        assert (
            await shop.http.post("/webhook/telegram", content=start_update(9201, 421), headers=HEADERS)
        ).status_code == 200
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.status == 500)
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.status == 500)
        with anyio.fail_after(5):
            while (
                refused := await shop.http.post("/webhook/telegram", content=start_update(9202, 422), headers=HEADERS)
            ).status_code != 503:
                await anyio.sleep(0.01)
        assert refused.json() == {"error": "telegram_unreachable"}
        # Telegram's own delivery: refused while open, kept, and delivered once the circuit lets calls through.
        shop.telegram.send_text(423, "/start")
        await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == 423 and c.ok, timeout=10
        )
        async with httpx.AsyncClient(base_url=shop.shop.config.telegram.api_base) as telegram:
            info = (await telegram.get(f"/bot{TOKEN}/getWebhookInfo")).json()["result"]
        assert "503" in info["last_error_message"]


async def test_polling_waits_while_the_updates_in_hand_are_at_the_limit(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys={"max_concurrent_updates": 2}) as shop:
        shop.telegram.delay_next("sendMessage", 2)
        shop.telegram.delay_next("sendMessage", 2)
        for user_id in (431, 432, 433):
            shop.telegram.add_user(user_id, first_name="Crowd", language_code="en")
            shop.telegram.send_text(user_id, "/start")
        replies = {
            user_id: await shop.telegram.wait_for_call(
                "sendMessage", predicate=lambda c, u=user_id: c.params["chat_id"] == u, timeout=10
            )
            for user_id in (431, 432, 433)
        }
        first_done = min(replies[431].time, replies[432].time)
        # The third user waited at Telegram for a free place, and was then answered.
        assert replies[433].time > first_done
        polls = [c for c in shop.telegram.calls if c.method == "getUpdates"]
        assert all(1 <= c.params.get("limit", 100) <= 2 for c in polls)
        # No poll was answered with updates while both places were taken: the third came after a reply.
        taking = [
            c for c in polls if c.ok and any(u["update_id"] and u["message"]["chat"]["id"] == 433 for u in c.result)
        ]
        assert taking and taking[0].time >= first_done


async def test_a_held_pool_refuses_with_a_clear_error_and_logs_what_to_do(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = DatabaseConfig(url=Secret(database_url), pool_min=1, pool_max=1, acquire_timeout=0.2)
    async with open_pool(database_url, config) as pool, pool.acquire():
        with caplog.at_level(logging.WARNING, logger="shopbot.db.pool"), pytest.raises(DatabaseBusyError) as busy:
            await pool.fetchval("SELECT 1")
    assert str(busy.value) == "no database connection came free within 0.2 s (pool of 1)"
    [record] = [r for r in caplog.records if r.name == "shopbot.db.pool"]
    assert "Raise [database] pool_max or acquire_timeout" in record.getMessage()


async def test_while_the_pool_is_held_a_request_gets_503_and_a_user_is_told_the_shop_is_busy(database_url: str) -> None:
    secret = "a-long-enough-secret-for-hs256-signing"
    database = DatabaseConfig(url=Secret(database_url), pool_min=1, pool_max=1, acquire_timeout=0.3)
    async with running_shop(database_url, database=database, api=ApiConfig(jwt_secret=Secret(secret))) as shop:
        shop.telegram.add_user(441, first_name="Waiting", language_code="en")
        token = mint_token(secret, scopes=["balance:read"], user_id=441, ttl_seconds=60)
        async with shop.shop.pool.acquire():
            answer = await shop.http.get("/api/v1/users/441/balance", headers={"Authorization": f"Bearer {token}"})
            shop.telegram.send_text(441, "/start")
            told = await shop.telegram.wait_for_call(
                "sendMessage", predicate=lambda c: c.params["chat_id"] == 441, timeout=10
            )
        assert answer.status_code == 503 and answer.json()["error"] == "busy; try again shortly"
        assert told.params["text"].startswith(BUSY_EN)
        errors = shop.shop.metrics.errors
        assert errors.labels("database_busy")._value.get() >= 2 and errors.labels("handler")._value.get() == 0
        # Once the connection is back, the same user is served as usual.
        shop.telegram.send_text(441, "/start")
        menu = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == 441, timeout=10
        )
        assert not menu.params["text"].startswith(BUSY_EN)
