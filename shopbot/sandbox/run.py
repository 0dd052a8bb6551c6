"""`shopbot sandbox`: the real shop, wired through its ordinary config keys to local emulators.

Nothing here changes how the shop runs: `run_shop` is the same coroutine `shopbot serve` runs;
only the configuration differs (an embedded PostgreSQL of the sandbox's own, a generated bot token,
`[telegram] api_base` pointing at the Telegram emulator).
"""

from __future__ import annotations

import logging
import secrets
from functools import partial
from pathlib import Path

import anyio
import msgspec
from anyio.abc import TaskStatus

from shopbot.app import RunningShop, run_shop, watch_signals
from shopbot.config.schema import Config, WebConfig
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class SandboxUrls(msgspec.Struct, frozen=True):
    shop: str
    telegram: str


def sandbox_config(base: Config, *, token: str, telegram_url: str, data_dir: Path, host: str, port: int) -> Config:
    """The operator's defaults with the sandbox's endpoints and throwaway credentials."""
    return msgspec.structs.replace(
        base,
        telegram=msgspec.structs.replace(base.telegram, token=Secret(token), api_base=telegram_url, mode="polling"),
        database=msgspec.structs.replace(base.database, url=Secret(""), embedded_dir=str(data_dir / "postgres")),
        web=WebConfig(host=host, port=port),
    )


async def run_sandbox(*, data_dir: Path, host: str = LOOPBACK, port: int = 8080, base: Config | None = None,
                      lifecycle: Lifecycle | None = None,
                      task_status: TaskStatus[SandboxUrls] = anyio.TASK_STATUS_IGNORED) -> int:
    """Run the emulators and the shop until stopped; return the exit code."""
    lifecycle = lifecycle or Lifecycle()
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:sandbox-{secrets.token_urlsafe(24)}"
    telegram = TelegramEmulator(token=token)
    shop_done = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(watch_signals, lifecycle, group.cancel_scope, name="signals")
        telegram_port = await group.start(partial(serve_telegram_emulator, telegram, host=LOOPBACK, port=0))
        config = sandbox_config(base or Config(), token=token, telegram_url=f"http://{LOOPBACK}:{telegram_port}",
                                data_dir=data_dir, host=host, port=port)

        async def shop(*, task_status: TaskStatus[RunningShop]) -> None:
            try:
                await run_shop(config, lifecycle, task_status=task_status)
            finally:
                shop_done.set()

        running = await group.start(shop)
        task_status.started(SandboxUrls(shop=f"http://{host}:{running.web_port}",
                                        telegram=f"http://{LOOPBACK}:{telegram_port}"))
        # The shop drains first (within its own grace period); the emulators go once it has returned.
        await shop_done.wait()
        group.cancel_scope.cancel()
    return lifecycle.exit_code
