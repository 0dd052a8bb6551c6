"""The wallet lock: payments from one wallet one at a time, across every shopbot instance.

It is a session-level PostgreSQL advisory lock on a connection of its own, so it lives exactly as long
as that connection. If the connection drops (a network blip, a restarted server, an operator's
pg_terminate_backend), the lock is gone and another worker may take it at once, while this one can be in
the middle of a step. So the payer asks `check()` before each step that spends (signing, submitting), and
stops when the answer is no; the order's lease keeps the other worker off it meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from shopbot.db.queries import queries
from shopbot.errors import ShopbotError

log = logging.getLogger(__name__)
# What a dropped or terminated connection raises, depending on when asyncpg notices.
CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class LockLost(ShopbotError):
    """The wallet lock is no longer held: stop before the next step, then take the lock again."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the wallet lock was lost: {why}")


class WalletLock:
    """The advisory lock of one wallet on `conn`."""

    def __init__(self, conn: asyncpg.Connection, wallet: str) -> None:
        self.conn = conn
        self.wallet = wallet

    async def acquire(self) -> None:
        """Wait for the lock (another instance may be paying)."""
        try:
            await queries.orders.wallet_lock(self.conn, self.wallet)
        except CONNECTION_ERRORS as exc:
            raise LockLost(type(exc).__name__) from None

    async def release(self) -> None:
        try:
            await queries.orders.wallet_unlock(self.conn, self.wallet)
        except CONNECTION_ERRORS as exc:
            raise LockLost(type(exc).__name__) from None

    async def check(self) -> None:
        """LockLost unless this session still holds the lock."""
        try:
            held = await queries.orders.holds_wallet_lock(self.conn, self.wallet)
        except CONNECTION_ERRORS as exc:
            raise LockLost(type(exc).__name__) from None
        if not held:
            raise LockLost("the session no longer holds it")


@contextlib.asynccontextmanager
async def open_wallet_lock(pool: asyncpg.Pool, wallet: str) -> AsyncIterator[WalletLock]:
    """A connection of the lock's own from the pool (not holding the lock yet); a dead one is replaced
    by the pool when it comes back."""
    async with pool.acquire() as conn:
        yield WalletLock(conn, wallet)
