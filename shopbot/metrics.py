"""Prometheus metrics. Each shop owns its registry, so tests can run several shops in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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
        self.updates = Counter("telegram_bot_updates", "Telegram updates handled.", registry=r)
        self.messages = Counter("telegram_bot_messages", "Messages received from users.", registry=r)
        self.errors = Counter("telegram_bot_errors", "Errors by kind.", ["kind"], registry=r)
        self.payments = Counter("telegram_bot_payments", "Payment status updates by outcome.", ["status"],
                                registry=r)
        self.orders = Counter("shopbot_orders", "Orders finished, by outcome.", ["state"], registry=r)
        self.wallet_balance = Gauge("shopbot_wallet_balance_ton", "The Fragment wallet's balance in TON.", registry=r)
        self.circuit_open = Gauge("shopbot_circuit_open", "1 while a service's circuit is open.", ["service"],
                                  registry=r)
        self.ready = Gauge("shopbot_ready", "1 while the shop is ready to serve.", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
