"""The whole shop in one process: a user talks to the bot, the operator probes health and metrics."""

from __future__ import annotations

import anyio
import asyncpg
import pytest

from shopbot.app.serve import run_shop
from shopbot.app.supervisor import ServiceStartError
from shopbot.config.schema import ApiConfig, RedisConfig, WebConfig
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from shopbot.web.api_auth import mint_token
from tests.shop_harness import TOKEN, free_port, running_shop, shop_config


async def test_start_is_answered_by_name_and_the_user_is_remembered(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        shop.telegram.add_user(5_000_000_001, first_name="<Ann>", language_code="ru")
        shop.telegram.send_text(5_000_000_001, "/start")
        reply = await shop.telegram.wait_for_call("sendMessage")
        assert reply.params["chat_id"] == 5_000_000_001
        assert "&lt;Ann&gt;" in reply.params["text"]
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT first_name, language FROM users WHERE id = $1", 5_000_000_001)
    finally:
        await conn.close()
    assert (row["first_name"], row["language"]) == ("<Ann>", "ru")
    assert shop.exit_codes == [0]


async def test_health_and_metrics_report_a_ready_shop(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        assert (await shop.http.get("/health")).json() == {"status": "ok"}
        detailed = await shop.http.get("/health/detailed")
        assert detailed.status_code == 200
        body = detailed.json()
        assert body["status"] == "ok" and body["ready"] is True
        assert body["checks"]["database"]["ok"] and body["checks"]["telegram"]["ok"]
        assert "redis" not in body["checks"]
        shop.telegram.send_text(42, "/start")
        await shop.telegram.wait_for_call("sendMessage")
        metrics = await shop.scrape()
        assert "telegram_bot_updates_total 1.0" in metrics
        assert "shopbot_ready 1.0" in metrics


async def test_readiness_includes_redis_when_configured(database_url: str, redis_url: str) -> None:
    async with running_shop(database_url, redis=RedisConfig(url=Secret(redis_url))) as shop:
        detailed = await shop.http.get("/health/detailed")
        assert detailed.status_code == 200
        assert detailed.json()["checks"]["redis"]["ok"] is True


async def test_readiness_turns_503_when_a_dependency_fails(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        shop.telegram.fail_next("getMe", error_code=502, description="Bad Gateway")
        detailed = await shop.http.get("/health/detailed")
        assert detailed.status_code == 503
        body = detailed.json()
        assert body["ready"] is False and body["checks"]["database"]["ok"] is True
        assert body["checks"]["telegram"]["ok"] is False
        assert body["checks"]["telegram"]["error"] == "TelegramServerError"


async def test_telegram_outage_is_waited_out_and_polling_resumes(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        shop.telegram.fail_next("getUpdates", error_code=502, description="Bad Gateway")
        shop.telegram.send_text(7, "/start")
        with anyio.fail_after(10):
            reply = await shop.telegram.wait_for_call("sendMessage")
        assert reply.params["chat_id"] == 7
        metrics = await shop.scrape()
        assert 'telegram_bot_errors_total{kind="telegram_poll"} 1.0' in metrics
        assert shop.shop.supervisor.services["telegram"] == "running"


async def test_a_failing_update_gets_an_apology_and_does_not_stop_the_bot(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        shop.telegram.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
        shop.telegram.send_text(8, "/start")
        failed = await shop.telegram.wait_for_call("sendMessage")
        assert not failed.ok
        apology = await shop.telegram.wait_for_call("sendMessage")
        assert apology.ok and "Sorry, something went wrong" in apology.params["text"]
        shop.telegram.send_text(8, "/start")
        answered = await shop.telegram.wait_for_call("sendMessage")
        assert answered.ok and "Welcome" in answered.params["text"]
        metrics = await shop.scrape()
        assert 'telegram_bot_errors_total{kind="handler"} 1.0' in metrics


async def test_a_rejected_bot_token_fails_the_boot_with_a_clear_reason(database_url: str) -> None:
    telegram = TelegramEmulator(token="1:another-bot")  # our TOKEN is unknown to it
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        with pytest.raises((ServiceStartError, BaseExceptionGroup)) as caught:
            await run_shop(shop_config(database_url, port), Lifecycle())
        group.cancel_scope.cancel()
    error = caught.value
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, ServiceStartError)
    assert str(error).startswith("telegram could not start:") and "Unauthorized" in str(error)
    assert TOKEN not in str(error)


async def test_webhook_mode_receives_updates_and_refuses_a_wrong_secret(database_url: str) -> None:
    port = free_port()
    web = WebConfig(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}")
    secret = "hook_Secret-123"
    async with running_shop(
        database_url, web=web, telegram_keys={"mode": "webhook", "webhook_secret": Secret(secret)}
    ) as shop:
        registered = await shop.telegram.wait_for_call("setWebhook")
        assert registered.params["url"] == f"http://127.0.0.1:{port}/webhook/telegram"
        assert registered.params["secret_token"] == secret
        assert not any(c.method == "getUpdates" for c in shop.telegram.calls)
        shop.telegram.send_text(77, "/start")
        reply = await shop.telegram.wait_for_call("sendMessage")
        assert reply.params["chat_id"] == 77
        update = (
            b'{"update_id": 99, "message": {"message_id": 1, "date": 0, "chat": {"id": 78, "type": "private"},'
            b' "from": {"id": 78, "is_bot": false, "first_name": "Eve"}, "text": "/start"}}'
        )
        missing = await shop.http.post("/webhook/telegram", content=update)
        wrong = await shop.http.post(
            "/webhook/telegram", content=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
        )
        assert (missing.status_code, wrong.status_code) == (401, 403)
        await anyio.sleep(0.3)
        assert not any(c.method == "sendMessage" and c.params["chat_id"] == 78 for c in shop.telegram.calls)
        assert await shop.shop.pool.fetchval("SELECT count(*) FROM users WHERE id = 78") == 0


async def test_the_command_menu_is_registered_in_both_languages(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        with anyio.fail_after(5):
            while sum(c.method == "setMyCommands" for c in shop.telegram.calls) < 3:
                await anyio.sleep(0.05)
        by_language = {
            c.params.get("language_code"): c.params["commands"]
            for c in shop.telegram.calls
            if c.method == "setMyCommands"
        }
        assert set(by_language) == {None, "en", "ru"}
        russian = {c["command"]: c["description"] for c in by_language["ru"]}
        assert russian["buy_stars"] == "Купить Telegram Stars" and "paysupport" in russian


async def test_the_shop_serves_the_rest_api_only_with_a_secret(database_url: str) -> None:
    secret = "a-long-enough-secret-for-hs256-signing"
    async with running_shop(database_url, api=ApiConfig(jwt_secret=Secret(secret))) as shop:
        shop.telegram.send_text(31, "/start")
        await shop.telegram.wait_for_call("sendMessage")
        token = mint_token(secret, scopes=["balance:read"], user_id=31, ttl_seconds=60)
        answer = await shop.http.get("/api/v1/users/31/balance", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["available"] == "0.00000000"
    async with running_shop(database_url) as shop:
        off = await shop.http.get("/api/v1/users/31/balance")
        assert off.status_code == 401 and "the API is off" in off.json()["error"]
