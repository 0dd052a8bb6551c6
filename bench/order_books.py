"""What every orders bench buys, and the check it ends with: each buyer's one order completed and paid exactly
once from the shop's wallet, every balance exact, the ledger verified."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from bench.common import BenchFailure, check, check_books
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.fragment_chain import FragmentPayment

RECIPIENT = "best_friend"
STARS = 50
PRICE = Decimal("1.00")  # 50 Stars at the default star_price of 0.02
START_BALANCE = Decimal("5.00")
TON = 10**9


async def check_order_books(
    dsn: str,
    fragment: FragmentEmulator,
    wallet: str,
    users: range,
    *,
    label: str = "",
    most_per_payment: int | None = None,
) -> list[FragmentPayment]:
    """Check the shop's books after a drain (`label` names the shop in each failure); the wallet's payments.
    One payment may carry several orders ([fragment] batch_orders), at most `most_per_payment`."""
    say = f"{label}: " if label else ""
    conn = await asyncpg.connect(dsn)
    try:
        orders = await conn.fetch("SELECT id, user_id, state, fragment_order_id FROM orders")
        accounts = await conn.fetch("SELECT user_id, kind, balance FROM accounts WHERE kind IN ('user', 'user_held')")
        await check_books(conn)
    finally:
        await conn.close()
    check(sorted(o["user_id"] for o in orders) == list(users), f"{say}not exactly one order per buyer")
    not_done = [o["id"] for o in orders if o["state"] != "completed"]
    check(not not_done, f"{say}{len(not_done)} orders did not complete, e.g. {not_done[:5]}")
    made = [p for p in fragment.payments if p.wallet == wallet]
    paid: dict[str, int] = {}
    for payment in made:
        check(payment.outcome == "success", f"{say}a payment ended {payment.outcome}")
        if most_per_payment is not None:
            check(len(payment.order_ids) <= most_per_payment, f"{say}a payment paid {len(payment.order_ids)} orders")
        for order_id in payment.order_ids:
            paid[order_id] = paid.get(order_id, 0) + 1
    wrong = [o["id"] for o in orders if paid.get(str(o["fragment_order_id"])) != 1]
    check(not wrong, f"{say}{len(wrong)} orders were not paid exactly once, e.g. {wrong[:5]}")
    # None carries anything but these orders.
    carried = sum(paid.values())
    check(
        carried == len(orders), f"{say}{len(made)} payments left the wallet carrying {carried} of {len(orders)} orders"
    )
    expected = {"user": START_BALANCE - PRICE, "user_held": Decimal(0)}
    off = [(a["user_id"], a["kind"], a["balance"]) for a in accounts if a["balance"] != expected[a["kind"]]]
    check(not off, f"{say}{len(off)} balances are wrong, e.g. {off[:5]}")
    if len({a["user_id"] for a in accounts if a["kind"] == "user"}) != len(users):
        raise BenchFailure(f"{say}not every buyer has a balance")
    return made
