"""Metrics read from the database and the breakers when Prometheus scrapes.

The circuits are read on every scrape (they are in memory or Redis). The aggregates over users, orders and the
ledger (counts and sums) are read at most once every STATS_SECONDS, whatever the scrape interval, so a scraper
that hammers /metrics costs the database one set of aggregate queries a minute; between reads a scrape shows
the last values.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import asyncpg

from shopbot.db.queries import queries
from shopbot.guard.circuit import OPEN, STATE_NUMBERS, CircuitBreaker
from shopbot.metrics import Metrics, Refresh

STATS_SECONDS = 60.0


def shop_stats(
    pool: asyncpg.Pool, metrics: Metrics, breakers: Sequence[CircuitBreaker], *, every: float = STATS_SECONDS
) -> Refresh:
    """Active users, orders by state, ledger size, what users are owed (read at most once per `every`
    seconds), and circuit states (one label per service, read every time)."""
    lock = anyio.Lock()
    last_read: float | None = None

    async def read_aggregates() -> None:
        nonlocal last_read
        # Concurrent scrapes wait for one read instead of each running it; a failed read also counts as the
        # minute's read, so a struggling database is not asked again on every scrape.
        async with lock:
            if last_read is not None and anyio.current_time() - last_read < every:
                return
            last_read = anyio.current_time()
            metrics.active_users.set(await queries.stats.active_users(pool))
            # Every state an order can be in, zero or not (the query lists them): label values stay bounded.
            for row in await queries.orders.orders_by_state(pool, None):
                metrics.orders_in_state.labels(row["state"]).set(row["n"])
            metrics.ledger_movements.set((await queries.ledger.ledger_totals(pool))["movements"])
            owed = {row["kind"]: row["total"] for row in await queries.ledger.owed_to_users(pool)}
            for account in ("user", "user_held"):
                metrics.ledger_balance.labels(account).set(float(owed.get(account, 0)))

    async def refresh() -> None:
        # The circuits first: they answer even while the database does not.
        for breaker in breakers:
            state = await breaker.state()
            metrics.circuit_open.labels(breaker.name).set(1 if state == OPEN else 0)
            metrics.circuit_state.labels(breaker.name).set(STATE_NUMBERS[state])
        await read_aggregates()

    return refresh
