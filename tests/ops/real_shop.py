"""A shop of real processes for operations tests: the emulators in the test, `shopbot serve` as children, and
customers who top up and buy through them, then the money checked the way an operator would check it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
from starlette.types import ASGIApp

from shopbot.db.queries import queries
from shopbot.ledger import Ledger, MovementType, SystemAccount
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import CallNotMade, TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of
from tests.shop_harness import HELEKET_KEY, MERCHANT, TOKEN

TON = 10**9
RECIPIENT = "best_friend"
STARS = 50
PRICE = Decimal("1.00")  # 50 Stars at the default star_price of 0.02
TOPUP = Decimal("5")
HUGE = 10_000_000
WEBHOOK_SECRET = "fleet_Secret-0123"


@dataclass
class World:
    """The emulated outside world one or more shops talk to, and the shops' wallet."""

    telegram: TelegramEmulator
    heleket: HeleketEmulator
    fragment: FragmentEmulator
    telegram_port: int
    heleket_port: int
    fragment_port: int
    seed_phrase: str
    wallet: str
    answered_presses: set[str] = field(default_factory=set)


@contextlib.asynccontextmanager
async def outside_world(
    *,
    heleket_retry_seconds: float = 0.5,
    heleket_attempts: int = 6,
    heleket_middleware: Callable[[ASGIApp], ASGIApp] | None = None,
) -> AsyncIterator[World]:
    """Telegram, Heleket (which retries a refused webhook, doubling its wait each time) and Fragment, served;
    `heleket_middleware` wraps Heleket's API to watch it."""
    telegram = TelegramEmulator(token=TOKEN, webhook_retry_seconds=0.2)
    heleket = HeleketEmulator(
        merchant_uuid=MERCHANT,
        api_key=HELEKET_KEY,
        webhook_retry_seconds=heleket_retry_seconds,
        max_webhook_attempts=heleket_attempts,
    )
    if heleket_middleware is not None:
        heleket.app = heleket_middleware(heleket.app)  # served as any ASGI app
    fragment = FragmentEmulator(latency=0.02)
    fragment.add_user(RECIPIENT, "Best Friend")
    words = throwaway_mnemonic()
    wallet = wallet_address_of(words, "v4r2")
    fragment.fund(wallet, 10_000 * TON)
    async with anyio.create_task_group() as group:
        ports = [
            await group.start(serve_telegram_emulator, telegram),
            await group.start(serve_heleket_emulator, heleket),
            await group.start(serve_fragment_emulator, fragment),
        ]
        yield World(telegram, heleket, fragment, *ports, " ".join(words), wallet)
        group.cancel_scope.cancel()


def write_serve_config(
    path: Path,
    world: World,
    database_url: str,
    *,
    web_port: int,
    public_url: str,
    webhook: bool = False,
    redis_url: str = "",
    admin_ids: tuple[int, ...] = (),
    poll_seconds: float = 30.0,
    rate_limit: dict[str, int] | None = None,
) -> Path:
    """A shopbot.toml for `shopbot serve` against the world's emulators."""
    sections: dict[str, dict[str, Any]] = {
        "telegram": {
            "token": TOKEN,
            "api_base": f"http://127.0.0.1:{world.telegram_port}",
            "poll_timeout": 1,
            "admin_ids": list(admin_ids),
            **({"mode": "webhook", "webhook_secret": WEBHOOK_SECRET} if webhook else {}),
        },
        "database": {
            "url": database_url,
            "pool_min": 1,
            "pool_max": 4,
            "connect_timeout": 2.0,
            "acquire_timeout": 3.0,
        },
        "redis": {"url": redis_url, "retry_seconds": 1.0},
        "web": {"host": "127.0.0.1", "port": web_port, "public_url": public_url},
        "metrics": {"port": 0},
        "log": {"format": "json", "level": "INFO"},
        "shutdown": {"grace_seconds": 5},
        "supervisor": {"backoff_initial": 0.1, "backoff_max": 1.0},
        "rate_limit": {
            "messages_per_minute": HUGE,
            "operations_per_minute": HUGE,
            "payments_per_minute": HUGE,
            "global_messages_per_minute": HUGE,
            "webhook_per_minute": HUGE,
            "burst": HUGE,
            **(rate_limit or {}),
        },
        "heleket": {
            "base_url": f"http://127.0.0.1:{world.heleket_port}",
            "merchant_uuid": MERCHANT,
            "api_key": HELEKET_KEY,
            "allowed_ips": [],  # loopback webhooks pass the address check
            "poll_seconds": poll_seconds,
        },
        "fragment": {
            "base_url": f"http://127.0.0.1:{world.fragment_port}",
            "seed_phrase": world.seed_phrase,
            "wallet_type": "v4r2",
            "kyc": False,
            "max_ton_per_order": 50.0,
            "request_timeout": 10.0,
        },
    }
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    path.write_text("\n".join(lines) + "\n")
    return path


async def seed_buyers(database_url: str, buyers: range, amount: Decimal) -> None:
    """Users with money on their balance, paid in through the ledger as a bonus."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        ledger = Ledger(pool, "USD")
        for user in buyers:
            await queries.users.upsert_user(pool, user, f"buyer{user}", f"Buyer{user}", None, "en", False)
            await ledger.credit(
                user_id=user,
                amount=amount,
                key=f"seed:{user}",
                type=MovementType.BONUS,
                reference="test",
                source=SystemAccount.BONUSES,
            )
    finally:
        await pool.close()


async def say(world: World, user: int, text: str, timeout: float = 15) -> str:
    """A user types text; the text of the bot's next message to them."""
    world.telegram.send_text(user, text)
    call = await world.telegram.wait_for_call(
        "sendMessage", predicate=lambda c: c.params["chat_id"] == user, timeout=timeout
    )
    return str(call.params["text"])


async def ask_top_up(world: World, user: int, amount: Decimal = TOPUP, timeout: float = 15) -> bool:
    """The user asks for a top-up (5 USD unless told) and the shop answers with an invoice (other messages to
    the user, such as the notice of an earlier top-up arriving, are not the answer)."""
    world.telegram.send_text(user, f"/recharge {amount}")
    await world.telegram.wait_for_call(
        "sendMessage",
        predicate=lambda c: c.params["chat_id"] == user and "Top-up #" in str(c.params["text"]),
        timeout=timeout,
    )
    return True


def pay_open_invoices(world: World, amount: Decimal = TOPUP) -> int:
    """Every invoice of `amount` still waiting at Heleket is paid in full (Heleket then sends its webhooks);
    how many."""
    waiting = [
        uuid
        for uuid, invoice in world.heleket.invoices.items()
        if invoice.status == "check" and invoice.amount == amount
    ]
    for uuid in waiting:
        world.heleket.pay(uuid)
    return len(waiting)


async def buy_stars(world: World, buyer: int, timeout: float = 15) -> bool:
    """The buyer asks for 50 Stars for @best_friend and presses Confirm on the confirmation (the "looking up"
    message, edited once the recipient is found); whether the press was answered."""
    telegram = world.telegram
    seen = max((m.message_id for m in telegram.chat_messages(buyer)), default=0)
    telegram.send_text(buyer, f"/buy_stars {STARS} @{RECIPIENT}")
    with anyio.fail_after(timeout):
        while not (confirm := confirm_button(world, buyer, after=seen)):
            await anyio.sleep(0.02)
    message_id, data = confirm
    query = telegram.press_button(buyer, message_id, data).callback_query
    assert query is not None
    await telegram.wait_for_call(
        "answerCallbackQuery", predicate=lambda c: c.params["callback_query_id"] == query.id, timeout=timeout
    )
    return True


def confirm_button(world: World, buyer: int, *, after: int) -> tuple[int, str] | None:
    """The bot's message newer than `after` with a Confirm button for Stars, and that button's data."""
    for message in world.telegram.chat_messages(buyer):
        for button in message.reply_markup.buttons() if message.message_id > after and message.reply_markup else []:
            if button.callback_data and button.callback_data.startswith("buy-ok:stars:"):
                return message.message_id, button.callback_data
    return None


async def attempt(step: Any, *args: Any) -> bool:
    """A customer's step that may fail while the shop is in trouble: False instead of an exception."""
    try:
        return bool(await step(*args))
    except (CallNotMade, ValueError, KeyError, TimeoutError):
        return False


async def health(web_port: int) -> tuple[int, dict[str, Any]]:
    """/health/detailed's status and body (status 0 when nothing answers)."""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        try:
            answer = await http.get(f"http://127.0.0.1:{web_port}/health/detailed")
        except httpx.HTTPError:
            return 0, {}
    return answer.status_code, answer.json()


async def wait_health(web_port: int, status: int, timeout: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            code, body = await health(web_port)
            if code == status:
                return body
            await anyio.sleep(0.1)


async def wait_settled(database_url: str, world: World, timeout: float = 60) -> None:
    """Until the shop has credited every invoice Heleket says is paid and finished every order."""
    with anyio.fail_after(timeout):
        while True:
            paid = sum(1 for invoice in world.heleket.invoices.values() if invoice.status == "paid")
            conn = await asyncpg.connect(database_url)
            try:
                credited = await conn.fetchval("SELECT count(*) FROM invoices WHERE status = 'paid' AND is_final")
                open_orders = await conn.fetchval(
                    "SELECT count(*) FROM orders WHERE state NOT IN ('completed', 'refunded')"
                )
            finally:
                await conn.close()
            if credited == paid and open_orders == 0:
                return
            await anyio.sleep(0.2)


async def check_money(database_url: str, world: World, payers: range) -> dict[str, int]:
    """Every invoice paid at Heleket credited exactly once with its amount, every order paid at most once and
    completed exactly when paid, the books verified; how many top-ups and orders that was."""
    conn = await asyncpg.connect(database_url)
    try:
        invoices = {row["order_id"]: row for row in await conn.fetch("SELECT * FROM invoices")}
        credits = await conn.fetch(
            "SELECT reference, count(*) AS n FROM movements WHERE idempotency_key LIKE 'invoice:%:credit' "
            "GROUP BY reference"
        )
        balances = dict(
            await conn.fetch(
                "SELECT user_id, balance FROM accounts WHERE kind = 'user' AND user_id = ANY($1)", list(payers)
            )
        )
        orders = await conn.fetch("SELECT id, state, fragment_order_id FROM orders")
        report = await verify_ledger(conn)
    finally:
        await conn.close()
    assert report.ok, report.problems[:20]
    paid = [invoice for invoice in world.heleket.invoices.values() if invoice.status == "paid"]
    for invoice in paid:
        row = invoices[invoice.order_id]
        assert row["status"] == "paid" and row["credited_amount"] == invoice.amount, dict(row)
    assert sorted(row["n"] for row in credits) == [1] * len(paid), "an invoice credited twice"
    expected: dict[int, Decimal] = {}
    for invoice in paid:
        user = invoices[invoice.order_id]["user_id"]
        expected[user] = expected.get(user, Decimal(0)) + invoice.amount
    assert {u: b for u, b in balances.items() if b} == expected
    times_paid: dict[str, int] = {}
    for payment in world.fragment.payments:
        assert payment.wallet == world.wallet and payment.outcome == "success", payment
        for order_id in payment.order_ids:
            times_paid[order_id] = times_paid.get(order_id, 0) + 1
    for order in orders:
        paid_times = times_paid.get(str(order["fragment_order_id"]), 0)
        assert paid_times == (1 if order["state"] == "completed" else 0), (dict(order), paid_times)
    return {"top-ups": len(paid), "orders": sum(o["state"] == "completed" for o in orders)}
