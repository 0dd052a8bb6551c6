"""Wallet watch: the TON balance as a metric and a health detail, and one admin alert per drop."""

from __future__ import annotations

import logging
from decimal import Decimal

import anyio
from anyio.abc import TaskStatus

from shopbot.fulfilment.fragment import NANO, FragmentClient, FragmentFailure
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.notify import Alert

log = logging.getLogger(__name__)


class WalletWatch:
    """Reads the wallet every `interval` seconds; alerts once each time it falls below `low`."""

    def __init__(
        self,
        client: FragmentClient,
        lifecycle: Lifecycle,
        metrics: Metrics,
        alert: Alert,
        *,
        low: Decimal,
        interval: float,
    ) -> None:
        self.client = client
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.alert = alert
        self.low = low
        self.interval = interval
        self.balance: Decimal | None = None
        self.below = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not self.lifecycle.stopping.is_set():
            await self.check()
            await self.lifecycle.sleep(self.interval)

    async def check(self) -> Decimal | None:
        """One reading; the alert goes out on the way down, and re-arms once the wallet is topped up."""
        try:
            info = await self.client.wallet_info()
        except FragmentFailure as exc:
            log.warning("wallet balance unavailable: %s", exc)
            return None
        self.balance = Decimal(str(info.get("balance_nano", "0"))) / NANO
        self.metrics.wallet_balance.set(float(self.balance))
        if self.balance < self.low and not self.below:
            self.below = True
            await self.alert(
                f"⚠️ The shop's TON wallet is low: {self.balance:.2f} TON left "
                f"(alert level {self.low} TON). Orders will fail once it cannot pay."
            )
        elif self.balance >= self.low:
            self.below = False
        return self.balance
