"""End to end: the real `shopbot serve` process, a user on the Telegram emulator, and signals."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest

from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from tests.ops.serve_process import ServeProcess
from tests.shop_harness import TOKEN

CLEAN_EXIT_WARNINGS = (
    "Unclosed client session",
    "Unclosed connector",
    "Task was destroyed",
    "coroutine was never awaited",
    "Traceback",
)


def write_config(folder: Path, telegram_port: int, database_url: str = "", grace: float = 5) -> Path:
    path = folder / "shopbot.toml"
    path.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\napi_base = "http://127.0.0.1:{telegram_port}"\npoll_timeout = 2\n'
        f'[database]\nurl = "{database_url}"\nembedded_dir = "{folder / "pg"}"\npool_min = 1\npool_max = 3\n'
        f'[web]\nport = 0\n[metrics]\nport = 0\n[shutdown]\ngrace_seconds = {grace}\n[log]\nformat = "json"\n'
    )
    return path


async def talk(telegram: TelegramEmulator, user_id: int) -> str:
    telegram.send_text(user_id, "/start")
    reply = await telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == user_id, timeout=15)
    return str(reply.params["text"])


async def test_serve_answers_start_and_exits_cleanly_on_sigterm(tmp_path: Path, database_url: str) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        serve = ServeProcess(write_config(tmp_path, port, database_url, grace=5))
        try:
            web_port = await serve.wait_ready()
            assert "Welcome" in await talk(telegram, 1001)
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{web_port}/health/detailed")).status_code == 200
            serve.signal(signal.SIGTERM)
            assert await serve.wait_exit(timeout=5 + 3) == 0
        finally:
            serve.kill()
        group.cancel_scope.cancel()
    for warning in CLEAN_EXIT_WARNINGS:
        assert warning not in serve.output, serve.output
    assert TOKEN not in serve.output
    messages = [entry["message"] for entry in serve.lines()]
    assert "stopping: received SIGTERM" in messages


async def test_sigterm_lets_an_update_in_flight_finish(tmp_path: Path, database_url: str) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        serve = ServeProcess(write_config(tmp_path, port, database_url, grace=10))
        try:
            await serve.wait_ready()
            telegram.delay_next("sendMessage", 2.0)  # the reply is still on its way when SIGTERM comes
            telegram.send_text(1002, "/start")
            await anyio.sleep(0.5)
            serve.signal(signal.SIGTERM)
            reply = await telegram.wait_for_call("sendMessage", timeout=10)
            assert reply.ok and reply.params["chat_id"] == 1002
            assert await serve.wait_exit(timeout=10) == 0
        finally:
            serve.kill()
        group.cancel_scope.cancel()
    assert "Traceback" not in serve.output


async def test_second_signal_stops_at_once(tmp_path: Path, database_url: str) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        serve = ServeProcess(write_config(tmp_path, port, database_url, grace=30))
        try:
            await serve.wait_ready()
            telegram.delay_next("sendMessage", 25.0)  # keeps the graceful stop waiting
            telegram.send_text(1003, "/start")
            await anyio.sleep(0.5)
            serve.signal(signal.SIGINT)
            await anyio.sleep(1.0)
            assert serve.process.poll() is None, "the graceful stop did not wait for the update in flight"
            serve.signal(signal.SIGINT)
            assert await serve.wait_exit(timeout=5) == 1
        finally:
            serve.kill()
        group.cancel_scope.cancel()
    assert "Traceback" not in serve.output
    assert "received SIGINT again: stopping now" in [entry["message"] for entry in serve.lines()]


@pytest.mark.timeout(240)
async def test_embedded_postgres_is_created_reused_and_survives_sigkill(tmp_path: Path) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        config = write_config(tmp_path, port, database_url="")
        first = ServeProcess(config)
        try:
            await first.wait_ready(timeout=120)
            assert "Welcome" in await talk(telegram, 2001)
        finally:
            first.process.send_signal(signal.SIGKILL)
            first.kill()
        second = ServeProcess(config)
        try:
            await second.wait_ready(timeout=60)
            assert "Welcome" in await talk(telegram, 2002)
            second.signal(signal.SIGTERM)
            assert await second.wait_exit(timeout=15) == 0
        finally:
            second.kill()
        group.cancel_scope.cancel()
    first_messages = [str(e["message"]) for e in first.lines()]
    second_messages = [str(e["message"]) for e in second.lines()]
    assert any(m.startswith("created database shopbot") for m in first_messages)
    assert not any(m.startswith("created database shopbot") for m in second_messages)
    assert not any(m.startswith("applied migration") for m in second_messages)
    assert "Traceback" not in second.output

    from shopbot.db.embedded import EmbeddedPostgres
    from shopbot.db.server import with_database

    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = server.start()
    try:
        conn = await asyncpg.connect(with_database(dsn, "shopbot"))
        try:
            users = {r["id"] for r in await conn.fetch("SELECT id FROM users")}
        finally:
            await conn.close()
    finally:
        server.stop()
    assert users == {2001, 2002}
