"""Scenario 3, orders: many users buying Stars at once, drained by the real `shopbot serve` against the Fragment
emulator with a fixed service latency on every request.

Each user (with 5.00 USD on their balance) types `/buy_stars 50 @best_friend` at once and waits for the
confirmation (the lookups of one name: the measure); then every user types `/buy_stars 50 @friend_<their id>`,
a recipient of their own, at once (one lookup on Fragment each: a note); then, with the clock running, every
user presses Confirm on that confirmation at once. Measured: how long the last buyer waited for a confirmation;
the Confirm press to the 'queued' screen, p99, beside its floor: a bare aiogram bot (bench/echo_bot.py) given
the same burst of presses after the shop stopped; orders/s completed and the time until the last order is
delivered. The ceiling of those: the emulator's own capacity for sequential payments from one wallet,
measured in the same run by fragment-api-lib itself paying orders back to back (create, wallet seqno, submit:
the calls any payment needs). At the end: every order completed and paid exactly once, every balance exactly
5.00 minus the price, the ledger verifies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import asyncpg
from fragment_api_lib.v3 import FragmentAPIv3

from bench.batch_speedup import BatchSettings, batch_speedup
from bench.common import (
    HELEKET_KEY,
    MERCHANT,
    PYTHON,
    TOKEN,
    BenchFailure,
    Measure,
    Postgres,
    ScenarioResult,
    check,
    percentile,
)
from bench.order_books import PRICE, RECIPIENT, STARS, START_BALANCE, TON, check_order_books
from bench.processes import Child, ShopProcess, free_port, write_shop_config
from bench.seed import seed_users
from bench.telegram_load import LoadTelegram, confirmations
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of

FIRST_USER = 7_000_001
TRUST = {"max_ton_per_order": 50.0, "max_fee_percent": 5.0}


@dataclass
class OrderSettings:
    users: int = 500
    latency: float = 0.05
    ceiling_payments: int = 40
    timeout: float = 420.0
    batch: BatchSettings = field(default_factory=BatchSettings)  # the batch speed-up, after the drain above


async def run_orders(
    postgres: Postgres, folder: Path, settings: OrderSettings, context: dict[str, object], result: ScenarioResult
) -> None:
    users = range(FIRST_USER, FIRST_USER + settings.users)
    fragment = FragmentEmulator(latency=settings.latency)
    fragment.add_user(RECIPIENT, "Best Friend")
    telegram = LoadTelegram(TOKEN)
    for user in users:
        telegram.add_user(user, first_name=f"Buyer{user}", username=f"buyer{user}", language_code="en")
    dsn = await postgres.fresh_database("orders")
    try:
        await seed_users(dsn, users, credits=1, amount=START_BALANCE)
        async with anyio.create_task_group() as group:
            fragment_port = await group.start(serve_fragment_emulator, fragment)
            telegram_port = await group.start(serve_telegram_emulator, telegram)
            # Only for TON's exchange rate: every order passes the cost guard before it is signed.
            heleket_port = await group.start(
                serve_heleket_emulator, HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
            )
            base_url = f"http://127.0.0.1:{fragment_port}"
            ceiling = await ceiling_rate(fragment, base_url, settings.ceiling_payments)
            figures: dict[str, float] = {}
            drain, confirm_ms, shop_wallet, lookups = await shop_drain(
                fragment,
                telegram,
                base_url,
                telegram_port,
                dsn,
                folder,
                users,
                settings,
                heleket_base=f"http://127.0.0.1:{heleket_port}",
                figures=figures,
            )
            floor_ms = await echo_floor(telegram, telegram_port, folder, users)
            group.cancel_scope.cancel()
        await check_order_books(dsn, fragment, shop_wallet, users)
    finally:
        await postgres.drop_database(dsn)
    n = settings.users
    result.measures += [
        Measure(
            f"orders/s completed ({n} buyers at once)",
            n / drain,
            "orders/s",
            ceiling,
            f"fragment-api-lib paying back to back ({settings.latency * 1000:.0f} ms per request)",
            "share",
        ),
        Measure(
            f"time to drain {n} orders", drain, "s", n / ceiling, "the same orders at the ceiling's rate", "multiple"
        ),
        Measure(
            "Confirm press to 'queued' screen, p99",
            percentile(confirm_ms, 99),
            "ms",
            percentile(floor_ms, 99),
            f"a bare aiogram bot answering the same {n} presses at once",
            "multiple",
            target="< 200 ms",
        ),
        Measure(f"last of {n} simultaneous buyers sees a confirmation", lookups, "s", target="< 5 s"),
    ]
    # Orders paid one by one against paid in batches, with the chain's landing delay (bench/batch_speedup.py).
    result.measures.append(await batch_speedup(postgres, folder, settings.batch, result))
    result.checks += [
        f"all {n} orders completed, one per buyer, each Fragment order paid exactly once from the shop's wallet",
        f"every buyer's balance is {START_BALANCE - PRICE} available and 0 held; ledger verify passes",
        "every Confirm press answered; no failed Bot API call; no ERROR logged",
    ]
    result.notes.append(
        f"Fragment emulator latency {settings.latency * 1000:.0f} ms on every request; ceiling "
        f"measured over {settings.ceiling_payments} payments; before the clock started, {n} buyers typed "
        f"/buy_stars {STARS} @{RECIPIENT} at once (the confirmations measure: the first lookup asks Fragment), "
        f"then each named a different recipient (one lookup each) and the last waited "
        f"{figures['different recipients']:.1f} s for the confirmation; "
        f"Confirm p50 {percentile(confirm_ms, 50):.0f} ms, the bare bot's p50 {percentile(floor_ms, 50):.0f} ms"
    )


async def ceiling_rate(fragment: FragmentEmulator, base_url: str, payments: int) -> float:
    """Payments/s of fragment-api-lib buying one order after another from a wallet of its own."""
    mnemonic = " ".join(throwaway_mnemonic())
    api = FragmentAPIv3(mnemonic, wallet_type="v4r2", base_url=base_url, trust=TRUST, timeout=30)
    fragment.fund(api.address, 10_000 * TON)

    def pay(first: int, count: int) -> float:
        started = time.perf_counter()
        for n in range(first, first + count):
            answer = api.buy("stars", RECIPIENT, STARS, kyc=False, idempotency_key=f"ceiling:{n}")
            if not answer.get("success", True) or answer.get("error_code"):
                raise BenchFailure(f"the ceiling's payment {n} failed: {answer}")
        return time.perf_counter() - started

    await anyio.to_thread.run_sync(pay, 0, 2)  # signs in, deploys the wallet
    elapsed = await anyio.to_thread.run_sync(pay, 2, payments)
    made = [p for p in fragment.payments if p.wallet == api.address]
    check(
        len(made) == payments + 2 and all(p.outcome == "success" for p in made),
        f"the ceiling made {len(made)} payments for {payments + 2} orders",
    )
    return payments / elapsed


async def shop_drain(
    fragment: FragmentEmulator,
    telegram: LoadTelegram,
    base_url: str,
    telegram_port: int,
    dsn: str,
    folder: Path,
    users: range,
    settings: OrderSettings,
    *,
    heleket_base: str,
    figures: dict[str, float] | None = None,
) -> tuple[float, list[float], str, float]:
    """Seconds from every buyer pressing Confirm until the last order completed; Confirm-to-answer latencies;
    the shop's wallet; seconds until every buyer saw a confirmation. With `figures`, every buyer then asks for
    a recipient of their own (the confirmation they press), and how long the last one waited goes to
    figures["different recipients"]."""
    words = throwaway_mnemonic()
    mnemonic = " ".join(words)
    wallet = wallet_address_of(words, "v4r2")
    fragment.fund(wallet, 10_000 * TON)
    web_port = free_port()
    config = write_shop_config(
        folder,
        telegram_port=telegram_port,
        web_port=web_port,
        database_url=dsn,
        heleket_base=heleket_base,
        fragment={
            "base_url": base_url,
            "seed_phrase": mnemonic,
            "wallet_type": "v4r2",
            "kyc": False,
            "max_ton_per_order": TRUST["max_ton_per_order"],
            "request_timeout": 60.0,
        },
    )
    shop = ShopProcess(config, folder, web_port)
    try:
        await shop.wait_ready()
        timeout = 60 + settings.users * settings.latency * 3
        confirms, lookups = await ask_all(telegram, users, RECIPIENT, timeout)
        if figures is not None:  # then every buyer names a recipient of their own (one lookup each), and buys that
            for user in users:
                fragment.add_user(f"friend_{user}", f"Friend {user}")
            confirms, figures["different recipients"] = await ask_all(telegram, users, "friend_{user}", timeout)
        conn = await asyncpg.connect(dsn)
        try:
            tally = telegram.measure_from_now()
            started = time.perf_counter()
            for user in users:
                message_id, data = confirms[user]
                telegram.press(user, data, message_id)
            last = started
            with anyio.move_on_after(settings.timeout):
                while True:
                    done = await conn.fetchval("SELECT count(*) FROM orders WHERE state IN ('completed', 'refunded')")
                    last = time.perf_counter()
                    if done >= len(users):
                        break
                    await anyio.sleep(0.05)
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
    return last - started, [x * 1000 for x in tally.latencies], wallet, lookups


async def echo_floor(telegram: LoadTelegram, telegram_port: int, folder: Path, users: range) -> list[float]:
    """Press-to-answer latencies (ms) of a bare aiogram bot (bench/echo_bot.py: no database, no middlewares)
    given a press from every buyer at the same instant, as the shop was: the floor of that burst's p99 on
    this machine. A few presses first, so its answers' models are built, as the shop's were."""
    echo = Child(
        "echo-bot",
        [PYTHON, "-m", "bench.echo_bot", "--api-base", f"http://127.0.0.1:{telegram_port}", "--token", TOKEN],
        folder,
    )
    try:
        await echo.wait_output("echo bot ready", 60)
        for user in users[:5]:
            telegram.press(user, "echo-warmup", telegram.buttons[user][0])
        await telegram.drain(30)
        tally = telegram.measure_from_now()
        for user in users:
            telegram.press(user, "echo-floor", telegram.buttons[user][0])
        await telegram.drain(60)
        check(not telegram.in_flight, f"the echo bot left {len(telegram.in_flight)} presses unanswered")
        check(not telegram.failures, f"failed Bot API calls from the echo bot: {dict(telegram.failures)}")
    finally:
        await echo.stop()
    check(tally.completed == len(users), f"the echo bot answered {tally.completed} of {len(users)} presses")
    return [x * 1000 for x in tally.latencies]


async def ask_all(
    telegram: LoadTelegram, users: range, recipient: str, timeout: float
) -> tuple[dict[int, tuple[int, str]], float]:
    """Every buyer types `/buy_stars` for `recipient` (formatted with `user`) at once; their confirmations, and
    the seconds until the last buyer saw theirs."""
    telegram.buttons.clear()
    asked = time.perf_counter()
    for user in users:
        telegram.type(user, f"/buy_stars {STARS} @{recipient.format(user=user)}")
    confirms = await confirmations(telegram, users, timeout)
    return confirms, time.perf_counter() - asked
