"""Scenario 4, footprint: resident memory of `shopbot serve` idle and under scenario 1's load, and the time from
spawning it to `/health/detailed` answering 200 with an embedded PostgreSQL that is already initialised.

Floors, measured in the same run: the bare aiogram echo bot of scenario 1 (its memory idle and under the same
load, and its time to its first poll). Memory is VmRSS of the Python process alone; the embedded PostgreSQL
runs as processes of its own and is not counted.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from bench.common import PYTHON, TOKEN, WORK, Measure, Postgres, ScenarioResult
from bench.processes import Child, ShopProcess, free_port, write_shop_config
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator

MB = 1024 * 1024
SETTLE_SECONDS = 3.0


@dataclass
class FootprintSettings:
    starts: int = 3


async def run_footprint(
    postgres: Postgres, folder: Path, settings: FootprintSettings, context: dict[str, object], result: ScenarioResult
) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    embedded = WORK / "embedded"
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        # The first start initialises the embedded server and migrates the database if this is a new folder;
        # it is not timed.
        first = "initialised it" if not (embedded / "pgdata" / "PG_VERSION").exists() else "was already there"
        await start_shop(port, embedded, folder, first=True)
        shop = [await start_shop(port, embedded, folder) for _ in range(settings.starts)]
        echo = [await start_echo(port, folder) for _ in range(settings.starts)]
        group.cancel_scope.cancel()
    ready = statistics.median(s[0] for s in shop)
    echo_ready = statistics.median(e[0] for e in echo)
    idle = statistics.median(s[1] for s in shop) / MB
    echo_idle = statistics.median(e[1] for e in echo) / MB
    result.measures += [
        Measure(
            "RSS idle",
            idle,
            "MB",
            echo_idle,
            "bare aiogram echo bot, idle",
            "multiple",
            "≤ echo bot + 15 MB (and < 150 MB)",
        ),
        Measure(
            "start-up to ready (embedded PostgreSQL)",
            ready,
            "s",
            echo_ready,
            "echo bot to its first poll (no database)",
            "multiple",
            "≤ echo bot + 1 s (and < 3 s)",
        ),
    ]
    if "shop_rss_peak" in context:
        peak, echo_peak = float(context["shop_rss_peak"]) / MB, float(context["echo_rss_peak"]) / MB  # type: ignore[arg-type]
        result.measures.insert(
            1, Measure("RSS peak under scenario 1", peak, "MB", echo_peak, "echo bot under the same load", "multiple")
        )
    result.checks.append("every start answered /health/detailed 200 and stopped with exit code 0 on SIGTERM")
    result.notes.append(
        f"start-up: median of {settings.starts} starts, each {', '.join(f'{s[0]:.2f}' for s in shop)} s; the "
        f"untimed first start {first}; RSS {SETTLE_SECONDS:.0f} s after ready, Python process only"
    )


async def start_shop(telegram_port: int, embedded: Path, folder: Path, *, first: bool = False) -> tuple[float, int]:
    """Seconds to ready, and RSS once settled."""
    web_port = free_port()
    config = write_shop_config(folder, telegram_port=telegram_port, web_port=web_port, embedded_dir=embedded)
    shop = ShopProcess(config, folder, web_port)
    try:
        ready = await (shop.wait_ready(timeout=240) if first else shop.wait_healthy(timeout=180))
        await anyio.sleep(SETTLE_SECONDS)
        rss = shop.rss()
        await shop.stop_cleanly()
    finally:
        await shop.stop()
    return ready, rss


async def start_echo(telegram_port: int, folder: Path) -> tuple[float, int]:
    echo = Child(
        "echo-bot",
        [PYTHON, "-m", "bench.echo_bot", "--api-base", f"http://127.0.0.1:{telegram_port}", "--token", TOKEN],
        folder,
    )
    try:
        await echo.wait_output("echo bot ready", 60)
        ready = time.perf_counter() - echo.started
        await anyio.sleep(SETTLE_SECONDS)
        rss = echo.rss()
    finally:
        await echo.stop()
    return ready, rss
