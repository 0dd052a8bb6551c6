"""Setting a scenario's world up before the clock starts: users and their money, through the shop's own code."""

from __future__ import annotations

from decimal import Decimal

import anyio
import asyncpg

from shopbot.db.queries import queries
from shopbot.ledger import Ledger, MovementType, SystemAccount


async def seed_users(dsn: str, users: range, *, credits: int = 0, amount: Decimal = Decimal("1.00")) -> None:
    """Each user known to the shop, with `credits` bonus movements of `amount` on their balance (through the
    ledger, the one door money passes)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    try:
        ledger = Ledger(pool, "USD")
        limiter = anyio.CapacityLimiter(8)

        async def one(user: int) -> None:
            async with limiter:
                await queries.users.upsert_user(pool, user, f"user{user}", f"User{user}", None, "en", False)
                for n in range(credits):
                    await ledger.credit(
                        user_id=user,
                        amount=amount,
                        key=f"bench-seed:{user}:{n}",
                        type=MovementType.BONUS,
                        reference="bench",
                        source=SystemAccount.BONUSES,
                    )

        async with anyio.create_task_group() as group:
            for user in users:
                group.start_soon(one, user)
    finally:
        await pool.close()
