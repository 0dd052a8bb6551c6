"""Metrics read from the database and the breakers when Prometheus scrapes."""

from __future__ import annotations

import asyncpg

from shopbot.db.queries import queries
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.metrics import Metrics, Refresh

ORDER_STATES = ("created", "queued", "paying", "verifying", "completed", "refunded")


def shop_stats(pool: asyncpg.Pool, metrics: Metrics, breakers: list[CircuitBreaker]) -> Refresh:
    """Active users, orders by state, ledger size and circuit states."""

    async def refresh() -> None:
        metrics.active_users.set(await queries.stats.active_users(pool))
        counts = {row["state"]: row["n"] for row in await queries.orders.count_orders_by_state(pool)}
        for state in ORDER_STATES:  # every state present, zero or not: label values stay bounded
            metrics.orders_in_state.labels(state).set(counts.get(state, 0))
        metrics.ledger_movements.set((await queries.ledger.ledger_totals(pool))["movements"])
        for breaker in breakers:
            metrics.circuit_open.labels(breaker.name).set(1 if breaker.state == OPEN else 0)

    return refresh
