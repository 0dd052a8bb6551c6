"""Scenario 1, updates: Telegram updates through the emulator's getUpdates to `shopbot serve`.

Each user walks the same five steps, one update in flight at a time: /start, the Balance button on the
menu, /balance, the History button on that screen, then the history's second page (each user has eleven
movements, so there is one). Two measurements, for the shop and for the ceiling (a bare aiogram bot on the
shop's poller, bench/echo_bot.py), against the same emulator in this process:
- saturated: every user sends its next update the moment the previous one is answered; updates/s.
- fixed load: updates offered at a fixed rate (open loop) from idle users; p50/p99 from the update being
  queued at the emulator to its reply reaching the emulator.
A second reference, saturated only: the same bare bot making the shop's Bot API calls (a press edits its
message and is answered, a command gets a message with a keyboard: 8 calls per walk of 5 updates, where the
echo bot makes 5). The shop's rate against it is what the shop's own work (database, middlewares, texts)
costs; against the echo bot, that plus the calls a shop's screens need.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg

from bench.common import PYTHON, TOKEN, Measure, Postgres, ScenarioResult, check, check_books, percentile
from bench.processes import Child, ShopProcess, cpu_seconds, free_port, write_shop_config
from bench.seed import seed_users
from bench.telegram_load import LoadTelegram
from shopbot.bot.callbacks import Menu
from shopbot.bot.routers.history import HistoryPage
from shopbot.locales import Texts
from shopbot.sandbox.telegram import serve_telegram_emulator

FIRST_USER = 5_000_001
STEPS = (
    ("text", "/start"),
    ("press", Menu(action="balance").pack()),
    ("text", "/balance"),
    ("press", Menu(action="history").pack()),
    ("press", HistoryPage(page=1).pack()),
)


@dataclass
class UpdatesSettings:
    users: int = 300  # the pool of users; all of them are in flight when saturated
    saturated_seconds: float = 15.0
    fixed_seconds: float = 15.0
    rate: float = 200.0  # updates/s offered in the fixed-load run (the target's load)
    light_rate: float = 20.0  # and a load far below capacity: the latency of one update, without queueing
    light_seconds: float = 10.0
    warmup: float = 3.0


@dataclass
class Run:
    saturated_rate: float
    cpu_share: float  # of one core, the process under test, while saturated
    emulator_cpu_share: float  # of one core, this process (the emulator and the users), meanwhile
    fixed_latencies: list[float]
    fixed_offered: float
    fixed_skipped: int
    light_latencies: list[float]
    rss_idle: int
    rss_peak: int
    ready_seconds: float
    calls_per_update: float  # Bot API calls (getUpdates aside) per update handled, while saturated


class Walker:
    """Where each user is in STEPS; sends the user's next update."""

    def __init__(self, telegram: LoadTelegram, users: range) -> None:
        self.telegram = telegram
        self.step = dict.fromkeys(users, 0)

    def next(self, user: int) -> None:
        kind, what = STEPS[self.step[user]]
        self.step[user] = (self.step[user] + 1) % len(STEPS)
        if kind == "text":
            self.telegram.type(user, what)
        else:
            self.telegram.press(user, what)


async def saturate(
    telegram: LoadTelegram, users: range, settings: UpdatesSettings, process: Child
) -> tuple[float, int, float, float, float]:
    """Updates/s with every user in flight all the time, the peak RSS of the process meanwhile, the CPU
    (cores) it and this process used, and the Bot API calls it made per update."""
    walker = Walker(telegram, users)
    completions = 0

    def again(chat: int) -> None:
        nonlocal completions
        completions += 1
        walker.next(chat)

    telegram.on_complete = again
    for user in users:
        walker.next(user)
    await anyio.sleep(settings.warmup)
    start_count, started = completions, time.perf_counter()
    start_calls = telegram.methods.total()
    cpu, own_cpu = process.cpu(), cpu_seconds()
    peak = 0
    while time.perf_counter() - started < settings.saturated_seconds:
        peak = max(peak, process.rss())
        await anyio.sleep(0.25)
    elapsed = time.perf_counter() - started
    rate = (completions - start_count) / elapsed
    calls = (telegram.methods.total() - start_calls) / max(completions - start_count, 1)
    cpu, own_cpu = (process.cpu() - cpu) / elapsed, (cpu_seconds() - own_cpu) / elapsed
    telegram.on_complete = None
    await telegram.drain(30)
    check(not telegram.in_flight, f"{len(telegram.in_flight)} updates never got their reply after the saturated run")
    return rate, peak, cpu, own_cpu, calls


async def offer(
    telegram: LoadTelegram, users: range, rate: float, seconds: float, warmup: float
) -> tuple[list[float], float, int]:
    """Latencies at a fixed offered rate (open loop); the rate actually offered; offers skipped for want of an
    idle user (none, unless replies fall far behind)."""
    walker = Walker(telegram, users)
    idle = deque(users)
    telegram.on_complete = idle.append
    sent = skipped = 0
    started = time.perf_counter()
    measuring_from = started + warmup
    tally = None
    end = measuring_from + seconds
    sent_measured = 0
    while (now := time.perf_counter()) < end:
        if tally is None and now >= measuring_from:
            tally = telegram.measure_from_now()
            sent_measured = sent
        due = int((now - started) * rate) - sent - skipped
        for _ in range(due):
            if idle:
                walker.next(idle.popleft())
                sent += 1
            else:
                skipped += 1
        await anyio.sleep(0.001)
    telegram.on_complete = None
    await telegram.drain(30)
    check(not telegram.in_flight, f"{len(telegram.in_flight)} updates never got their reply at the fixed load")
    assert tally is not None
    # A copy: the tally stays live, and the next run (the echo bot's) would add its own replies to it.
    return list(tally.latencies), (sent - sent_measured) / seconds, skipped


async def measure(
    telegram: LoadTelegram,
    process: Child,
    users: range,
    settings: UpdatesSettings,
    ready_seconds: float,
    *,
    saturated_only: bool = False,
) -> Run:
    await anyio.sleep(3)  # settled: what it holds when nothing happens
    rss_idle = process.rss()
    rate, peak, cpu, own_cpu, calls = await saturate(telegram, users, settings, process)
    if saturated_only:
        return Run(rate, cpu, own_cpu, [], 0.0, 0, [], rss_idle, peak, ready_seconds, calls)
    light, _, _ = await offer(telegram, users, settings.light_rate, settings.light_seconds, settings.warmup)
    latencies, offered, skipped = await offer(telegram, users, settings.rate, settings.fixed_seconds, settings.warmup)
    return Run(rate, cpu, own_cpu, latencies, offered, skipped, light, rss_idle, peak, ready_seconds, calls)


async def run_updates(
    postgres: Postgres, folder: Path, settings: UpdatesSettings, context: dict[str, object], result: ScenarioResult
) -> None:
    users = range(FIRST_USER, FIRST_USER + settings.users)
    dsn = await postgres.fresh_database("updates")
    try:
        await seed_users(dsn, users, credits=11)
        telegram = LoadTelegram(TOKEN)
        for user in users:
            telegram.add_user(user, first_name=f"User{user}", username=f"user{user}", language_code="en")
        async with anyio.create_task_group() as group:
            port = await group.start(serve_telegram_emulator, telegram)
            shop = await run_shop(telegram, port, dsn, folder, users, settings)
            echo = await run_echo(telegram, port, folder, users, settings)
            calls = await run_echo(telegram, port, folder, users, settings, shop_calls=True)
            group.cancel_scope.cancel()
        conn = await asyncpg.connect(dsn)
        try:
            await check_books(conn)
        finally:
            await conn.close()
    finally:
        await postgres.drop_database(dsn)

    apology = Texts().get("en", "error-apology")
    check(not any(apology in text for text in telegram.texts_seen), "the shop apologised for a failed update")
    result.checks.append("every update got its reply; no failed Bot API call; no apology; no ERROR logged")
    result.checks.append("ledger verify: every movement balances, every cached balance equals its postings")
    context.update(shop_rss_peak=shop.rss_peak, echo_rss_peak=echo.rss_peak)
    ms = [x * 1000 for x in shop.fixed_latencies]
    echo_ms = [x * 1000 for x in echo.fixed_latencies]
    light = [x * 1000 for x in shop.light_latencies]
    echo_light = [x * 1000 for x in echo.light_latencies]
    result.measures += [
        Measure(
            "updates/s handled, saturated",
            shop.saturated_rate,
            "updates/s",
            echo.saturated_rate,
            "bare aiogram echo bot",
            "share",
            "≥ 60 % of ceiling",
        ),
        Measure(
            "updates/s handled, saturated, against the shop's Bot API calls",
            shop.saturated_rate,
            "updates/s",
            calls.saturated_rate,
            "bare aiogram bot making the shop's Bot API calls",
        ),
        Measure(
            f"p50 latency at {settings.light_rate:.0f} updates/s",
            percentile(light, 50),
            "ms",
            percentile(echo_light, 50),
            "bare aiogram echo bot",
            "multiple",
        ),
        Measure(
            f"p99 latency at {settings.light_rate:.0f} updates/s",
            percentile(light, 99),
            "ms",
            percentile(echo_light, 99),
            "bare aiogram echo bot",
            "multiple",
        ),
        Measure(
            f"p50 latency at {load_name(settings.rate, shop, echo)}",
            percentile(ms, 50),
            "ms",
            percentile(echo_ms, 50),
            "bare aiogram echo bot",
            "multiple",
        ),
        Measure(
            f"p99 latency at {load_name(settings.rate, shop, echo)}",
            percentile(ms, 99),
            "ms",
            percentile(echo_ms, 99),
            "bare aiogram echo bot",
            "multiple",
            "< 50 ms at 200 updates/s",
        ),
    ]
    result.notes.append(
        f"{settings.users} users in flight when saturated; fixed load offered {shop.fixed_offered:.0f}/s to the shop "
        f"({shop.fixed_skipped} offers skipped: no idle user) and {echo.fixed_offered:.0f}/s to the echo bot "
        f"({echo.fixed_skipped} skipped); {len(ms)} and {len(echo_ms)} updates measured"
    )
    result.notes.append(
        f"CPU while saturated (cores): shop {shop.cpu_share:.2f} + emulator and users {shop.emulator_cpu_share:.2f}, "
        f"i.e. {shop.cpu_share / shop.saturated_rate * 1000:.2f} ms of shop CPU per update; echo bot "
        f"{echo.cpu_share:.2f} + {echo.emulator_cpu_share:.2f} ({echo.cpu_share / echo.saturated_rate * 1000:.2f} ms "
        f"per update); bare bot making the shop's Bot API calls {calls.cpu_share:.2f} + "
        f"{calls.emulator_cpu_share:.2f} ({calls.cpu_share / calls.saturated_rate * 1000:.2f} ms per update)"
    )
    result.notes.append(
        f"Bot API calls per update while saturated (a walk of 5 needs 8 for the shop's screens): shop "
        f"{shop.calls_per_update:.2f}, bare bot making the shop's calls {calls.calls_per_update:.2f}, echo bot "
        f"{echo.calls_per_update:.2f}"
    )


def load_name(rate: float, shop: Run, echo: Run) -> str:
    """The fixed load's name; when replies fell so far behind that no user was idle, what was really offered."""
    name = f"{rate:.0f} updates/s"
    if shop.fixed_skipped or echo.fixed_skipped:
        name += f" (not sustained: shop {shop.fixed_offered:.0f}/s, echo {echo.fixed_offered:.0f}/s offered)"
    return name


async def run_shop(
    telegram: LoadTelegram, port: int, dsn: str, folder: Path, users: range, settings: UpdatesSettings
) -> Run:
    web_port = free_port()
    shop = ShopProcess(
        write_shop_config(folder, telegram_port=port, web_port=web_port, database_url=dsn), folder, web_port
    )
    try:
        ready = await shop.wait_ready()
        run = await measure(telegram, shop, users, settings, ready)
        check(not telegram.failures, f"failed Bot API calls from the shop: {dict(telegram.failures)}")
        await shop.stop_cleanly()
    finally:
        await shop.stop()
    problems = shop.problems()
    check(not problems, "the shop logged errors:\n" + "\n".join(problems[:20]))
    return run


async def run_echo(
    telegram: LoadTelegram,
    port: int,
    folder: Path,
    users: range,
    settings: UpdatesSettings,
    *,
    shop_calls: bool = False,
) -> Run:
    """The echo bot, measured as the shop is; with `shop_calls`, the bare bot making the shop's Bot API calls,
    saturated only."""
    args = [PYTHON, "-m", "bench.echo_bot", "--api-base", f"http://127.0.0.1:{port}", "--token", TOKEN]
    name = "echo-bot-shop-calls" if shop_calls else "echo-bot"
    echo = Child(name, [*args, "--shop-calls"] if shop_calls else args, folder)
    try:
        await echo.wait_output("echo bot ready", 60)
        ready = time.perf_counter() - echo.started
        run = await measure(telegram, echo, users, settings, ready, saturated_only=shop_calls)
        check(not telegram.failures, f"failed Bot API calls from the {name}: {dict(telegram.failures)}")
    finally:
        await echo.stop()
    return run
