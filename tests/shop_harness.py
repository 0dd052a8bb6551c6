"""Start the real shop in-process against the Telegram emulator and a test database."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import anyio
import httpx
import msgspec

from shopbot.app.serve import RunningShop, run_shop
from shopbot.config.schema import (
    Config,
    DatabaseConfig,
    FragmentConfig,
    HeleketConfig,
    MetricsConfig,
    RateLimitConfig,
    ShutdownConfig,
    SupervisorConfig,
    TelegramConfig,
    WebConfig,
)
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic

TOKEN = "7000000001:AAH-test-token-for-the-emulator"
MERCHANT = "c26b80a8-9549-4a0c-9a4b-4b6a8a2b7c11"
HELEKET_KEY = "TEST_PAYMENT_KEY_for_the_emulator_0001"


@dataclass
class ShopUnderTest:
    shop: RunningShop
    telegram: TelegramEmulator
    http: httpx.AsyncClient
    exit_codes: list[int]
    heleket: HeleketEmulator | None = None
    fragment: FragmentEmulator | None = None

    @property
    def lifecycle(self) -> Lifecycle:
        return self.shop.lifecycle

    @property
    def metrics_url(self) -> str:
        """/metrics on the shop's private metrics listener (not the public web port)."""
        return f"http://127.0.0.1:{self.shop.metrics_port}/metrics"

    async def scrape(self) -> str:
        """What Prometheus would read from the metrics listener."""
        async with httpx.AsyncClient() as client:
            response = await client.get(self.metrics_url)
        response.raise_for_status()
        return response.text


UNLIMITED = RateLimitConfig(
    messages_per_minute=100_000,
    operations_per_minute=100_000,
    payments_per_minute=100_000,
    global_messages_per_minute=1_000_000,
    webhook_per_minute=1_000_000,
)


def shop_config(database_url: str, telegram_port: int, **overrides: object) -> Config:
    config = Config(
        telegram=TelegramConfig(token=Secret(TOKEN), api_base=f"http://127.0.0.1:{telegram_port}", poll_timeout=1),
        database=DatabaseConfig(url=Secret(database_url), pool_min=1, pool_max=4),
        web=WebConfig(host="127.0.0.1", port=0),
        metrics=MetricsConfig(host="127.0.0.1", port=0),
        shutdown=ShutdownConfig(grace_seconds=5),
        supervisor=SupervisorConfig(backoff_initial=0.05, backoff_max=0.2),
        # Tests type and press far faster than people; rate limits are tested on their own (test_limits).
        rate_limit=UNLIMITED,
    )
    for section, value in overrides.items():
        config = _replace(config, section, value)
    return config


def _replace(config: Config, section: str, value: object) -> Config:
    return msgspec.structs.replace(config, **{section: value})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def heleket_config(heleket_port: int, **keys: object) -> HeleketConfig:
    return msgspec.structs.replace(
        HeleketConfig(
            base_url=f"http://127.0.0.1:{heleket_port}",
            merchant_uuid=MERCHANT,
            api_key=Secret(HELEKET_KEY),
            allowed_ips=(),
            poll_seconds=3600.0,
        ),
        **keys,
    )


def fragment_config(fragment_port: int, **keys: object) -> FragmentConfig:
    return msgspec.structs.replace(
        FragmentConfig(
            base_url=f"http://127.0.0.1:{fragment_port}",
            seed_phrase=Secret(" ".join(throwaway_mnemonic())),
            wallet_type="v4r2",
            kyc=False,
            max_ton_per_order=50.0,
            request_timeout=5.0,
            low_balance_ton=Decimal("1"),
        ),
        **keys,
    )


@contextlib.asynccontextmanager
async def running_shop(
    database_url: str,
    telegram: TelegramEmulator | None = None,
    *,
    heleket: bool = False,
    heleket_keys: dict[str, object] | None = None,
    fragment: FragmentEmulator | None = None,
    fragment_keys: dict[str, object] | None = None,
    telegram_keys: dict[str, object] | None = None,
    **overrides: object,
) -> AsyncIterator[ShopUnderTest]:
    """The shop, up and ready; stopped gracefully on exit, and its exit code recorded. With heleket=True
    it talks to a Heleket emulator and receives its webhooks on a known port."""
    telegram = telegram or TelegramEmulator(token=TOKEN)
    exit_codes: list[int] = []
    async with anyio.create_task_group() as group:
        telegram_port = await group.start(serve_telegram_emulator, telegram)
        emulator = None
        # A shop that sells checks every order's cost at Heleket's TON rate (the cost guard), so it has Heleket.
        heleket = heleket or fragment is not None
        if heleket:
            emulator = HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY, webhook_retry_seconds=0.05)
            heleket_port = await group.start(serve_heleket_emulator, emulator)
            web_port = free_port()
            overrides.setdefault("heleket", heleket_config(heleket_port, **(heleket_keys or {})))
            overrides.setdefault(
                "web", WebConfig(host="127.0.0.1", port=web_port, public_url=f"http://127.0.0.1:{web_port}")
            )
        if fragment is not None:
            fragment_port = await group.start(serve_fragment_emulator, fragment)
            overrides.setdefault("fragment", fragment_config(fragment_port, **(fragment_keys or {})))
        lifecycle = Lifecycle()

        config = shop_config(database_url, telegram_port, **overrides)
        if telegram_keys:
            config = _replace(config, "telegram", msgspec.structs.replace(config.telegram, **telegram_keys))

        async def run(*, task_status: anyio.abc.TaskStatus[RunningShop]) -> None:
            exit_codes.append(await run_shop(config, lifecycle, task_status=task_status))

        shop = await group.start(run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{shop.web_port}") as http:
            try:
                yield ShopUnderTest(shop, telegram, http, exit_codes, emulator, fragment)
            finally:
                lifecycle.request_stop("test over")
        with anyio.fail_after(10):
            while not exit_codes:
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()
    # Across every test that runs a shop: no button press is left without an answer.
    assert not telegram.unanswered_callbacks, f"unanswered callback queries: {telegram.unanswered_callbacks}"
