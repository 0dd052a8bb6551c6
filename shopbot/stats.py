"""Metrics read from the database and the breakers when Prometheus scrapes."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shopbot.db.queries import queries
from shopbot.guard.circuit import OPEN, STATE_NUMBERS, CircuitBreaker
from shopbot.metrics import Metrics, Refresh

ORDER_STATES = ("created", "queued", "paying", "verifying", "completed", "refunded")


def shop_stats(pool: asyncpg.Pool, metrics: Metrics, breakers: Sequence[CircuitBreaker]) -> Refresh:
    """Active users, orders by state, ledger size, what users are owed, and circuit states (one label per service)."""

    async def refresh() -> None:
        # The circuits first: they answer even while the database does not.
        for breaker in breakers:
            state = await breaker.state()
            metrics.circuit_open.labels(breaker.name).set(1 if state == OPEN else 0)
            metrics.circuit_state.labels(breaker.name).set(STATE_NUMBERS[state])
        metrics.active_users.set(await queries.stats.active_users(pool))
        counts = {row["state"]: row["n"] for row in await queries.orders.count_orders_by_state(pool)}
        for state in ORDER_STATES:  # every state present, zero or not: label values stay bounded
            metrics.orders_in_state.labels(state).set(counts.get(state, 0))
        metrics.ledger_movements.set((await queries.ledger.ledger_totals(pool))["movements"])
        owed = {row["kind"]: row["total"] for row in await queries.ledger.owed_to_users(pool)}
        for account in ("user", "user_held"):
            metrics.ledger_balance.labels(account).set(float(owed.get(account, 0)))

    return refresh
