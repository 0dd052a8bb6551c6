"""Start the real shop in-process against the Telegram emulator and a test database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx

from shopbot.app import RunningShop, run_shop
from shopbot.config.schema import (
    Config, DatabaseConfig, ShutdownConfig, SupervisorConfig, TelegramConfig, WebConfig,
)
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator

TOKEN = "7000000001:AAH-test-token-for-the-emulator"


@dataclass
class ShopUnderTest:
    shop: RunningShop
    telegram: TelegramEmulator
    http: httpx.AsyncClient
    exit_codes: list[int]

    @property
    def lifecycle(self) -> Lifecycle:
        return self.shop.lifecycle


def shop_config(database_url: str, telegram_port: int, **overrides: object) -> Config:
    config = Config(
        telegram=TelegramConfig(token=Secret(TOKEN), api_base=f"http://127.0.0.1:{telegram_port}", poll_timeout=1),
        database=DatabaseConfig(url=Secret(database_url), pool_min=1, pool_max=4),
        web=WebConfig(host="127.0.0.1", port=0),
        shutdown=ShutdownConfig(grace_seconds=5),
        supervisor=SupervisorConfig(backoff_initial=0.05, backoff_max=0.2),
    )
    for section, value in overrides.items():
        config = _replace(config, section, value)
    return config


def _replace(config: Config, section: str, value: object) -> Config:
    import msgspec

    return msgspec.structs.replace(config, **{section: value})


@contextlib.asynccontextmanager
async def running_shop(database_url: str, telegram: TelegramEmulator | None = None,
                       **overrides: object) -> AsyncIterator[ShopUnderTest]:
    """The shop, up and ready; stopped gracefully on exit, and its exit code recorded."""
    telegram = telegram or TelegramEmulator(token=TOKEN)
    exit_codes: list[int] = []
    async with anyio.create_task_group() as group:
        telegram_port = await group.start(serve_telegram_emulator, telegram)
        lifecycle = Lifecycle()

        async def run(*, task_status: anyio.abc.TaskStatus[RunningShop]) -> None:
            exit_codes.append(await run_shop(shop_config(database_url, telegram_port, **overrides), lifecycle,
                                             task_status=task_status))

        shop = await group.start(run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{shop.web_port}") as http:
            try:
                yield ShopUnderTest(shop, telegram, http, exit_codes)
            finally:
                lifecycle.request_stop("test over")
        with anyio.fail_after(10):
            while not exit_codes:
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()


