"""The soak: a mixed load on the real `shopbot serve` for a long while (ten minutes by default), watching what
an operator's VPS would run out of first: memory (RSS), open file descriptors and PostgreSQL connections.

Users walk /start and /balance, payers top up 5.00 USD with `/recharge 5` (the Heleket emulator then pays the
invoice and sends its webhook), buyers buy 50 Stars with `/buy_stars 50 @best_friend` and Confirm (drained by
the order worker against the Fragment emulator), and an admin looks at the dashboard (today, 7 days, 30 days in
turn). The emulators run in the bench process; the shop polls Telegram as a one-instance shop does.

The shop's RSS, its open descriptors and the database's connections are sampled every `sample_seconds`; the
first sample is taken after `warmup` seconds of load. At the end: every paid top-up credited exactly once, every
order completed and paid exactly once, every balance exact, `ledger verify` clean, no ERROR in the log, a clean
exit on SIGTERM.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg

from bench.common import (
    HELEKET_KEY,
    MERCHANT,
    TOKEN,
    BenchFailure,
    Measure,
    Postgres,
    ScenarioResult,
    check,
    check_books,
    percentile,
)
from bench.processes import ShopProcess, free_port, write_shop_config
from bench.seed import seed_users
from bench.telegram_load import LoadTelegram
from shopbot.bot.admin.callbacks import Dashboard
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of

ADMIN = 8_000_000
WALKERS = range(8_000_001, 8_000_201)
PAYERS = range(8_100_001, 8_100_051)
BUYERS = range(8_200_001, 8_200_051)
RECIPIENT = "best_friend"
STARS = 50
PRICE = Decimal("1.00")  # 50 Stars at the default star_price of 0.02
TOPUP = Decimal("5.00")
BUYER_BALANCE = Decimal("100.00")
TON = 10**9
WAIT = 30.0  # seconds one step of one user may take before the soak calls it a failure


@dataclass
class SoakSettings:
    seconds: float = 600.0
    warmup: float = 30.0
    sample_seconds: float = 30.0
    updates_per_second: float = 10.0
    topup_every: float = 2.0
    purchase_every: float = 2.0
    dashboard_every: float = 5.0
    fragment_latency: float = 0.05


@dataclass
class Sample:
    at: float  # seconds since the load started
    rss_mb: float
    fds: int
    connections: int


@dataclass
class Tallies:
    samples: list[Sample] = field(default_factory=list)
    topups: dict[int, int] = field(default_factory=dict)  # payer -> invoices paid
    orders: int = 0
    dashboards: int = 0
    skipped: int = 0  # walker updates not sent: every walker still had one in flight


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def run_soak(
    postgres: Postgres, folder: Path, settings: SoakSettings, context: dict[str, object], result: ScenarioResult
) -> None:
    fragment = FragmentEmulator(latency=settings.fragment_latency)
    fragment.add_user(RECIPIENT, "Best Friend")
    heleket = HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
    telegram = LoadTelegram(TOKEN)
    for user in (ADMIN, *WALKERS, *PAYERS, *BUYERS):
        telegram.add_user(user, first_name=f"User{user}", username=f"user{user}", language_code="en")
    dsn = await postgres.fresh_database("soak")
    tallies = Tallies()
    try:
        await seed_users(dsn, WALKERS, credits=3)
        await seed_users(dsn, BUYERS, credits=1, amount=BUYER_BALANCE)
        async with anyio.create_task_group() as group:
            fragment_port = await group.start(serve_fragment_emulator, fragment)
            telegram_port = await group.start(serve_telegram_emulator, telegram)
            heleket_port = await group.start(serve_heleket_emulator, heleket)
            wallet = await soak_shop(
                telegram,
                heleket,
                fragment,
                dsn,
                folder,
                settings,
                tallies,
                ports=(telegram_port, heleket_port, fragment_port),
            )
            group.cancel_scope.cancel()
        await check_money(dsn, heleket, fragment, wallet, tallies)
    finally:
        await postgres.drop_database(dsn)
    report(result, settings, tallies, telegram)


async def soak_shop(
    telegram: LoadTelegram,
    heleket: HeleketEmulator,
    fragment: FragmentEmulator,
    dsn: str,
    folder: Path,
    settings: SoakSettings,
    tallies: Tallies,
    *,
    ports: tuple[int, int, int],
) -> str:
    """Run the shop under the mixed load for `settings.seconds`, sampling it; the shop's wallet address."""
    telegram_port, heleket_port, fragment_port = ports
    words = throwaway_mnemonic()
    wallet = wallet_address_of(words, "v4r2")
    fragment.fund(wallet, 100_000 * TON)
    web_port = free_port()
    config = write_shop_config(
        folder,
        telegram_port=telegram_port,
        web_port=web_port,
        database_url=dsn,
        heleket_base=f"http://127.0.0.1:{heleket_port}",
        fragment={
            "base_url": f"http://127.0.0.1:{fragment_port}",
            "seed_phrase": " ".join(words),
            "wallet_type": "v4r2",
            "kyc": False,
            "max_ton_per_order": 50.0,
            "request_timeout": 60.0,
        },
        poll_timeout=2,
    )
    config.write_text(config.read_text().replace("[telegram]\n", f"[telegram]\nadmin_ids = [{ADMIN}]\n", 1))
    shop = ShopProcess(config, folder, web_port)
    try:
        await shop.wait_ready()
        conn = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            tally = telegram.measure_from_now()
            async with anyio.create_task_group() as load:
                load.start_soon(walk, telegram, settings, tallies)
                load.start_soon(top_up, telegram, heleket, settings, tallies)
                load.start_soon(buy, telegram, settings, tallies)
                load.start_soon(look_at_dashboard, telegram, settings, tallies)
                await sample(shop, conn, started, settings, tallies)
                load.cancel_scope.cancel()
            await telegram.drain(WAIT)
            await wait_until_done(conn, tallies)
        finally:
            await conn.close()
        check(not telegram.in_flight, f"{len(telegram.in_flight)} updates were never answered")
        check(not telegram.failures, f"failed Bot API calls: {dict(telegram.failures)}")
        check(tally.completed > 0, "no update was answered")
        await shop.stop_cleanly()
    finally:
        await shop.stop()
    problems = shop.problems()
    check(not problems, "the shop logged errors:\n" + "\n".join(problems[:20]))
    return wallet


async def sample(
    shop: ShopProcess, conn: asyncpg.Connection, started: float, settings: SoakSettings, tallies: Tallies
) -> None:
    """One sample after the warm-up, then one every `sample_seconds` until the soak is over."""
    database = await conn.fetchval("SELECT current_database()")
    await anyio.sleep(min(settings.warmup, settings.seconds))
    while True:
        connections = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'shopbot'", database
        )
        at = time.perf_counter() - started
        tallies.samples.append(Sample(at, shop.rss() / 2**20, open_fds(shop.pid), int(connections)))
        check(shop.alive(), "the shop exited during the soak")
        if at >= settings.seconds:
            return
        await anyio.sleep(min(settings.sample_seconds, settings.seconds - at))


async def walk(telegram: LoadTelegram, settings: SoakSettings, tallies: Tallies) -> None:
    """/start and /balance from the walkers, at a steady rate; a walker with an update in flight is skipped."""
    texts = itertools.cycle(("/start", "/balance"))
    walkers = itertools.cycle(WALKERS)
    while True:
        user = next(walkers)
        if user in telegram.in_flight:
            tallies.skipped += 1
        else:
            telegram.type(user, next(texts))
        await anyio.sleep(1 / settings.updates_per_second)


async def answered(telegram: LoadTelegram, user: int) -> None:
    with anyio.fail_after(WAIT):
        while user in telegram.in_flight:
            await anyio.sleep(0.02)


async def top_up(telegram: LoadTelegram, heleket: HeleketEmulator, settings: SoakSettings, tallies: Tallies) -> None:
    """A payer asks for a 5.00 top-up; the invoice the shop opened at Heleket is paid, and its webhook sent."""
    paid: set[str] = set()
    for payer in itertools.cycle(PAYERS):
        telegram.type(payer, f"/recharge {TOPUP:f}")
        await answered(telegram, payer)
        for uuid, invoice in heleket.invoices.items():
            if uuid not in paid and invoice.status == "check":
                heleket.pay(uuid)
                paid.add(uuid)
                tallies.topups[payer] = tallies.topups.get(payer, 0) + 1
        await anyio.sleep(settings.topup_every)


async def buy(telegram: LoadTelegram, settings: SoakSettings, tallies: Tallies) -> None:
    """A buyer asks for 50 Stars for @best_friend and presses Confirm."""
    for buyer in itertools.cycle(BUYERS):
        telegram.buttons.pop(buyer, None)
        telegram.type(buyer, f"/buy_stars {STARS} @{RECIPIENT}")
        await answered(telegram, buyer)
        message_id, confirm = await confirmation(telegram, buyer)
        telegram.press(buyer, confirm, message_id)
        tallies.orders += 1  # counted as pressed: a soak that ends now still waits for this order
        await answered(telegram, buyer)
        await anyio.sleep(settings.purchase_every)


async def confirmation(telegram: LoadTelegram, buyer: int) -> tuple[int, str]:
    """The buyer's confirmation (after the recipient lookup): its message and the Confirm button's data."""
    with anyio.move_on_after(WAIT):
        while True:
            message_id, data = telegram.buttons.get(buyer, (0, []))
            confirm = [d for d in data if d.startswith("buy-ok:stars:")]
            if confirm:
                return message_id, confirm[0]
            await anyio.sleep(0.02)
    raise BenchFailure(f"buyer {buyer} saw no Confirm button within {WAIT:g} s")


async def look_at_dashboard(telegram: LoadTelegram, settings: SoakSettings, tallies: Tallies) -> None:
    """The admin opens /admin once, then the dashboard for today, 7 days and 30 days in turn."""
    telegram.type(ADMIN, "/admin")
    await answered(telegram, ADMIN)
    for period in itertools.cycle(("today", "7d", "30d")):
        telegram.press(ADMIN, Dashboard(period=period).pack())
        await answered(telegram, ADMIN)
        tallies.dashboards += 1
        await anyio.sleep(settings.dashboard_every)


async def wait_until_done(conn: asyncpg.Connection, tallies: Tallies) -> None:
    """Until every paid top-up is credited and every order is done (or WAIT * 4 seconds have passed)."""
    with anyio.move_on_after(WAIT * 4):
        while True:
            credited = await conn.fetchval("SELECT count(*) FROM invoices WHERE status = 'paid'")
            done = await conn.fetchval("SELECT count(*) FROM orders WHERE state IN ('completed', 'refunded')")
            if credited >= sum(tallies.topups.values()) and done >= tallies.orders:
                return
            await anyio.sleep(0.2)


async def check_money(
    dsn: str, heleket: HeleketEmulator, fragment: FragmentEmulator, wallet: str, tallies: Tallies
) -> None:
    """Every paid top-up credited once with its amount; every order completed and paid once; the books verify."""
    conn = await asyncpg.connect(dsn)
    try:
        invoices = await conn.fetch("SELECT user_id, status, amount FROM invoices")
        orders = await conn.fetch("SELECT id, user_id, state, fragment_order_id FROM orders")
        balances = dict(
            await conn.fetch(
                "SELECT user_id, balance FROM accounts WHERE kind = 'user' AND user_id = ANY($1)", list(PAYERS)
            )
        )
        await check_books(conn)
    finally:
        await conn.close()
    paid_at_heleket = sum(1 for invoice in heleket.invoices.values() if invoice.status == "paid")
    credited = [row for row in invoices if row["status"] == "paid"]
    check(len(credited) == paid_at_heleket, f"{len(credited)} invoices credited for {paid_at_heleket} paid")
    wrong = [p for p, n in tallies.topups.items() if balances.get(p) != TOPUP * n]
    check(not wrong, f"{len(wrong)} payers' balances are not 5.00 per paid top-up, e.g. {wrong[:5]}")
    check(len(orders) == tallies.orders, f"{len(orders)} orders for {tallies.orders} Confirm presses")
    not_done = [o["id"] for o in orders if o["state"] != "completed"]
    check(not not_done, f"{len(not_done)} orders did not complete, e.g. {not_done[:5]}")
    paid: dict[str, int] = {}
    for payment in (p for p in fragment.payments if p.wallet == wallet):
        check(payment.outcome == "success", f"a payment ended {payment.outcome}")
        for order_id in payment.order_ids:
            paid[order_id] = paid.get(order_id, 0) + 1
    twice = [o["id"] for o in orders if paid.get(str(o["fragment_order_id"])) != 1]
    check(not twice, f"{len(twice)} orders were not paid exactly once, e.g. {twice[:5]}")


def report(result: ScenarioResult, settings: SoakSettings, tallies: Tallies, telegram: LoadTelegram) -> None:
    first, last = tallies.samples[0], tallies.samples[-1]
    latencies = [x * 1000 for x in telegram.tally.latencies]
    result.measures += [
        Measure(f"RSS after {first.at:.0f} s of load", first.rss_mb, "MB"),
        Measure(f"RSS after {last.at:.0f} s of load", last.rss_mb, "MB"),
        Measure("RSS peak", max(s.rss_mb for s in tallies.samples), "MB"),
        Measure(f"open file descriptors after {first.at:.0f} s", first.fds, "fds"),
        Measure(f"open file descriptors after {last.at:.0f} s", last.fds, "fds"),
        Measure(f"PostgreSQL connections after {first.at:.0f} s", first.connections, "connections"),
        Measure(f"PostgreSQL connections after {last.at:.0f} s", last.connections, "connections"),
        Measure(f"updates answered in {settings.seconds:g} s", telegram.tally.completed, "updates"),
        Measure("update p99 under the mixed load", percentile(latencies, 99), "ms"),
    ]
    result.checks += [
        f"{sum(tallies.topups.values())} top-ups paid and each credited exactly once; every payer's balance exact",
        f"{tallies.orders} orders completed, each paid exactly once from the shop's wallet",
        f"{tallies.dashboards} dashboard views answered; every update answered; no failed Bot API call",
        "ledger verify passes; no ERROR logged; clean exit on SIGTERM",
    ]
    result.notes.append(
        "samples (s: RSS MB / fds / PostgreSQL connections): "
        + ", ".join(f"{s.at:.0f}: {s.rss_mb:.0f}/{s.fds}/{s.connections}" for s in tallies.samples)
    )
    result.notes.append(
        f"load: {settings.updates_per_second:g} walker updates/s ({tallies.skipped} skipped: walker busy), a top-up "
        f"every {settings.topup_every:g} s, a purchase every {settings.purchase_every:g} s, a dashboard view every "
        f"{settings.dashboard_every:g} s; emulators in the bench process on the same cores"
    )
