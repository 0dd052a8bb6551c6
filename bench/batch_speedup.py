"""Batch speed-up (issue 15, item 4): how much faster `shopbot serve` drains a queue of orders when it pays them in
batches than one by one, against the Fragment emulator whose chain lands each payment `landing_delay` seconds
(3 s) after accepting it — a wallet sends one payment at a time, so one order per payment caps a shop at a few
orders a minute.

Two shops drain the same load side by side, each with a database, a Telegram emulator and a funded v5r1 wallet of
its own, both on one Fragment emulator (its usual 50 ms on every request): one with `[fragment] batch_orders = 1`
(one by one), one with `batch_orders = "max"` (a W5 wallet sends 255 messages and a no-KYC order has one leg, so
one payment can carry every order queued). They run at once because the one-by-one drain is almost all waiting
for landings; the batched one, far shorter, overlaps only its first seconds, when both shops take their buyers'
presses — which slows the batched drain, if anything, so the figure errs low. Each buyer (5.00 USD on their
balance) types `/buy_stars 50 @best_friend` and waits for the confirmation; then, with the clock running, every
buyer presses Confirm at once. A drain lasts from the first press until the last order completed.

Measured: the one-by-one drain time over the batched drain time ("batch speed-up", target ≥ 3×). Checked for
each shop: every order completed, one per buyer, each Fragment order paid exactly once from that shop's wallet
(one order per payment one by one, at most 255 per payment batched), every balance exactly 5.00 minus the price
with nothing held, `ledger verify` clean, every Confirm answered, no failed Bot API call, no ERROR logged.

The orders scenario calls it (`bench/scenario_orders.py`):

    result.measures.append(await batch_speedup(postgres, folder, BatchSettings(...), result))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg

from bench.common import (
    HELEKET_KEY,
    MERCHANT,
    TOKEN,
    Measure,
    Postgres,
    ScenarioResult,
    check,
)
from bench.order_books import PRICE, RECIPIENT, STARS, START_BALANCE, TON, check_order_books
from bench.processes import ShopProcess, free_port, write_shop_config
from bench.seed import seed_users
from bench.telegram_load import LoadTelegram, confirmations
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of

FIRST_USER = 8_000_001
WALLET = "v5r1"  # 255 messages per payment; no-KYC orders have one leg, so up to 255 orders per payment
MAX_PER_PAYMENT = 255


@dataclass
class BatchSettings:
    orders: int = 200
    landing_delay: float = 3.0  # seconds from accepting a payment to its landing
    latency: float = 0.05  # seconds the Fragment emulator adds to every request (the orders scenario's)
    timeout: float = 1200.0  # for either drain


QUICK = BatchSettings(orders=40)  # about 2.5 minutes instead of 11


@dataclass
class Drain:
    name: str
    seconds: float
    wallet: str
    payments: int = 0
    largest: int = 0


async def batch_speedup(
    postgres: Postgres, folder: Path, settings: BatchSettings | None = None, result: ScenarioResult | None = None
) -> Measure:
    """Drain `settings.orders` orders one by one and in batches, side by side; the speed-up. With `result`, its
    checks and notes are added there too."""
    settings = settings or BatchSettings()
    fragment = FragmentEmulator(latency=settings.latency, landing_delay=settings.landing_delay)
    fragment.add_user(RECIPIENT, "Best Friend")
    drains: dict[str, Drain] = {}
    async with anyio.create_task_group() as group:
        fragment_port = await group.start(serve_fragment_emulator, fragment)
        # Only for TON's exchange rate: every order passes the cost guard before it is signed.
        heleket_port = await group.start(
            serve_heleket_emulator, HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
        )

        async def run(name: str, batch_orders: int | str) -> None:
            drains[name] = await drain(
                postgres,
                folder,
                fragment,
                settings,
                name=name,
                batch_orders=batch_orders,
                fragment_base=f"http://127.0.0.1:{fragment_port}",
                heleket_base=f"http://127.0.0.1:{heleket_port}",
            )

        async with anyio.create_task_group() as drains_group:
            drains_group.start_soon(run, "one by one", 1)
            drains_group.start_soon(run, "batched", "max")
        group.cancel_scope.cancel()
    one, batched = drains["one by one"], drains["batched"]
    check(one.largest == 1 and one.payments == settings.orders, f"one by one made {one.payments} payments")
    speedup = one.seconds / batched.seconds
    measure = Measure(
        "batch speed-up",
        speedup,
        "×",
        None,
        f"{settings.orders} orders: {one.seconds:.1f} s one by one / {batched.seconds:.1f} s batched",
        "share",
        "≥ 3×",
    )
    if result is not None:
        n = settings.orders
        result.checks += [
            f"batch speed-up: both drains completed all {n} orders, one per buyer, each Fragment order paid exactly "
            f"once from its shop's wallet ({one.payments} payments one by one, {batched.payments} batched)",
            f"batch speed-up: every buyer's balance is {START_BALANCE - PRICE} available and 0 held in both shops; "
            "ledger verify passes in both; every Confirm answered; no failed Bot API call; no ERROR logged",
        ]
        result.notes.append(
            f"batch speed-up: {n} orders drained by two shops side by side on one Fragment emulator landing each "
            f"payment {settings.landing_delay:g} s after accepting it ({settings.latency * 1000:.0f} ms per "
            f"request), {WALLET} wallets, no-KYC: one by one (batch_orders = 1) {one.seconds:.1f} s; batched "
            f'("max") {batched.seconds:.1f} s in {batched.payments} payments of up to {batched.largest} orders'
        )
    return measure


async def drain(
    postgres: Postgres,
    folder: Path,
    fragment: FragmentEmulator,
    settings: BatchSettings,
    *,
    name: str,
    batch_orders: int | str,
    fragment_base: str,
    heleket_base: str,
) -> Drain:
    """One shop draining the load; its drain time, after its checks passed."""
    users = range(FIRST_USER, FIRST_USER + settings.orders)
    telegram = LoadTelegram(TOKEN)
    for user in users:
        telegram.add_user(user, first_name=f"Buyer{user}", username=f"buyer{user}", language_code="en")
    words = throwaway_mnemonic()
    wallet = wallet_address_of(words, WALLET)
    fragment.fund(wallet, 10_000 * TON)
    dsn = await postgres.fresh_database("batch" if batch_orders != 1 else "onebyone")
    try:
        await seed_users(dsn, users, credits=1, amount=START_BALANCE)
        async with anyio.create_task_group() as group:
            telegram_port = await group.start(serve_telegram_emulator, telegram)
            web_port = free_port()
            config = write_shop_config(
                folder,
                telegram_port=telegram_port,
                web_port=web_port,
                database_url=dsn,
                heleket_base=heleket_base,
                fragment={
                    "base_url": fragment_base,
                    "seed_phrase": " ".join(words),
                    "wallet_type": WALLET,
                    "kyc": False,
                    "max_ton_per_order": 50.0,
                    "request_timeout": 60.0,
                    "batch_orders": batch_orders,
                },
            )
            seconds = await timed_drain(telegram, dsn, folder, config, web_port, users, settings)
            group.cancel_scope.cancel()
        result = Drain(name, seconds, wallet)
        await check_drain(dsn, fragment, result, users)
        return result
    finally:
        await postgres.drop_database(dsn)


async def timed_drain(
    telegram: LoadTelegram, dsn: str, folder: Path, config: Path, web_port: int, users: range, settings: BatchSettings
) -> float:
    shop = ShopProcess(config, folder, web_port)
    try:
        await shop.wait_ready()
        for user in users:
            telegram.type(user, f"/buy_stars {STARS} @{RECIPIENT}")
        confirms = await confirmations(telegram, users, timeout=60 + len(users) * settings.latency * 3)
        conn = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            for user in users:
                message_id, data = confirms[user]
                telegram.press(user, data, message_id)
            done, last = 0, started
            with anyio.move_on_after(settings.timeout):
                while done < len(users):
                    await anyio.sleep(0.1)
                    done = await conn.fetchval("SELECT count(*) FROM orders WHERE state IN ('completed', 'refunded')")
                    last = time.perf_counter()
            check(done >= len(users), f"only {done} of {len(users)} orders were done after {settings.timeout} s")
        finally:
            await conn.close()
        await telegram.drain(10)
        check(not telegram.in_flight, f"{len(telegram.in_flight)} Confirm presses were never answered")
        check(not telegram.failures, f"failed Bot API calls: {dict(telegram.failures)}")
        await shop.stop_cleanly()
    finally:
        await shop.stop()
    problems = shop.problems()
    check(not problems, "the shop logged errors:\n" + "\n".join(problems[:20]))
    return last - started


async def check_drain(dsn: str, fragment: FragmentEmulator, drain: Drain, users: range) -> None:
    """Every order completed and paid exactly once from this shop's wallet; exact balances; the ledger verifies."""
    made = await check_order_books(
        dsn, fragment, drain.wallet, users, label=drain.name, most_per_payment=MAX_PER_PAYMENT
    )
    drain.payments = len(made)
    drain.largest = max((len(p.order_ids) for p in made), default=0)


async def main(quick: bool) -> None:  # pragma: no cover - a manual run: python -m bench.batch_speedup [--quick]
    import os
    import sys
    from datetime import UTC, datetime

    from bench.common import WORK

    folder = WORK / "runs" / (datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-batch")
    folder.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(os.environ.get("TEST_DATABASE_URL"))
    await anyio.to_thread.run_sync(postgres.start)
    result = ScenarioResult("batch speed-up")
    started = time.perf_counter()
    try:
        measure = await batch_speedup(postgres, folder, QUICK if quick else BatchSettings(), result)
    finally:
        await anyio.to_thread.run_sync(postgres.stop)
    print(f"{measure.name}: {measure.value:.1f} {measure.unit} ({measure.reference_name}); target {measure.target}")
    for line in result.checks + result.notes:
        print(f"- {line}")
    print(f"({time.perf_counter() - started:.0f} s; logs in {folder})", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    import sys

    anyio.run(main, "--quick" in sys.argv[1:], backend="asyncio")
