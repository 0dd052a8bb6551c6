"""Prometheus metrics. Each shop owns its registry, so tests can run several shops in one process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)
Refresh = Callable[[], Awaitable[None]]
REFRESH_SECONDS = 2.0


class Metrics:
    """Every metric the shop exports, registered on one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.service_restarts = Counter(
            "shopbot_service_restarts", "Services restarted after a crash.", ["service"], registry=r
        )
        self.service_crashes = Counter(
            "shopbot_service_crashes", "Crashes of a supervised service.", ["service"], registry=r
        )
        self.service_up = Gauge(
            "shopbot_service_up",
            "1 while a service runs; 0 while it restarts, is stopped or is off (an optional "
            "service that could not start or kept crashing).",
            ["service"],
            registry=r,
        )
        self.updates = Counter("telegram_bot_updates", "Telegram updates handled.", registry=r)
        self.messages = Counter("telegram_bot_messages", "Messages received from users.", registry=r)
        self.errors = Counter("telegram_bot_errors", "Errors by kind.", ["kind"], registry=r)
        self.payments = Counter("telegram_bot_payments", "Payment status updates by outcome.", ["status"], registry=r)
        self.orders = Counter("shopbot_orders", "Orders finished, by outcome.", ["state"], registry=r)
        self.orders_refused = Counter(
            "shopbot_orders_refused",
            "Orders the cost guard refused before signing: below the minimum margin, or "
            "no TON rate young enough to judge.",
            ["reason"],
            registry=r,
        )
        for reason in ("below_margin", "no_rate"):
            self.orders_refused.labels(reason)  # exported at zero from the start
        self.wallet_balance = Gauge("shopbot_wallet_balance_ton", "The Fragment wallet's balance in TON.", registry=r)
        self.circuit_open = Gauge(
            "shopbot_circuit_open", "1 while a service's circuit is open.", ["service"], registry=r
        )
        self.circuit_state = Gauge(
            "shopbot_circuit_state", "A service's circuit: 0 closed, 1 half-open, 2 open.", ["service"], registry=r
        )
        self.ready = Gauge("shopbot_ready", "1 while the shop is ready to serve.", registry=r)
        self.response_time = Histogram(
            "telegram_bot_response_time_seconds",
            "Time to handle one Telegram update.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.active_users = Gauge("telegram_bot_active_users", "Distinct users seen in the last 24 hours.", registry=r)
        self.orders_in_state = Gauge("shopbot_orders_in_state", "Orders by their current state.", ["state"], registry=r)
        self.ledger_movements = Gauge("shopbot_ledger_movements", "Movements in the ledger.", registry=r)
        self.ledger_balance = Gauge(
            "shopbot_ledger_balance",
            "What the shop owes its users, in the shop currency: spendable (user) and reserved for orders (user_held).",
            ["account"],
            registry=r,
        )
        self.rate_limit_hits = Counter(
            "telegram_bot_rate_limit_hits", "Requests refused by a rate limit.", ["limit"], registry=r
        )
        self.redis_fallback = Gauge(
            "shopbot_redis_fallback",
            "1 while Redis is configured but unreachable and in-process state answers.",
            registry=r,
        )
        for limit in ("messages", "operations", "payments", "global", "webhook"):
            self.rate_limit_hits.labels(limit)  # every limit exported from the start, at zero
        for kind in ("handler", "web"):
            self.errors.labels(kind)
        self.webhook_requests = Counter(
            "shopbot_webhook_requests", "Webhook requests answered, by HTTP status.", ["endpoint", "status"], registry=r
        )
        self.redis_outages = Counter("shopbot_redis_outages", "Times Redis became unreachable.", registry=r)
        self.cache_hits = Counter(
            "shopbot_cache_hits", "Cache reads answered from the cache, by kind.", ["kind"], registry=r
        )
        self.cache_misses = Counter(
            "shopbot_cache_misses", "Cache reads that found nothing, by kind.", ["kind"], registry=r
        )
        self.price_margin = Gauge(
            "shopbot_price_margin_percent",
            "Margin of the current price over the current cost, per product (stars is per "
            "star); NaN while the cost is unknown (no TON rate or no order yet).",
            ["product"],
            registry=r,
        )
        # Values read from the database when Prometheus scrapes, not on every event.
        self.refreshers: list[Refresh] = []

    async def refresh(self) -> None:
        """Bring the scraped-on-demand values up to date; a slow or failing source keeps its last value."""
        for refresh in self.refreshers:
            try:
                with anyio.fail_after(REFRESH_SECONDS):
                    await refresh()
            except Exception as exc:
                log.warning("metrics refresh failed: %s", exc)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
