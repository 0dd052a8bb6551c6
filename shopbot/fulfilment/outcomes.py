"""How an order ends, and who hears of it: delivered (its cost booked), refunded (never while a payment
signed for it can still land: it waits, to be verified again), and the buyer's notices and the operator's
alerts, which never hold up an order when they cannot be sent."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from decimal import Decimal
from typing import Protocol

from shopbot.fulfilment.costs import TonRates
from shopbot.fulfilment.orders import Order, Orders, PaymentMayLand
from shopbot.metrics import Metrics
from shopbot.notify import Alert

log = logging.getLogger(__name__)


class OrderNotifier(Protocol):
    """What the buyer is told about their order (the bot's notices plug in here)."""

    async def delivered(self, order: Order) -> None: ...
    async def refunded(self, order: Order, reason: str) -> None: ...
    async def delayed(self, order: Order) -> None: ...


class Outcomes:
    """Completes and refunds orders through the state machine, and tells the buyer and the operator."""

    def __init__(
        self, orders: Orders, rates: TonRates, metrics: Metrics, notifier: OrderNotifier, alert: Alert | None
    ) -> None:
        self.orders = orders
        self.rates = rates  # TON in the shop currency: for the booked cost
        self.metrics = metrics
        self.notifier = notifier
        self.alert = alert  # the operator's ear: orders the service answered wrongly, orders refused at a loss

    async def complete(self, order: Order, txid: str | None) -> None:
        """Delivered: capture the hold, booking the Fragment cost at TON's rate now (zero when unknown)."""
        current = await self.orders.get(order.id)
        cost_ton = current.cost_ton if current else None
        rate = await self.rates.rate() if cost_ton is not None else None
        cost = (cost_ton * rate).quantize(Decimal("0.01")) if cost_ton is not None and rate else Decimal(0)
        done = await self.orders.complete(order, txid=txid, cost_ton=cost_ton, cost=cost)
        if done is not None:
            self.metrics.orders.labels("completed").inc()
            log.info("order %s delivered: %s %s to @%s", order.id, order.quantity, order.product, order.recipient)
            await self.tell(self.notifier.delivered(done))

    async def refund(self, order: Order, reason: str) -> bool:
        """Release the hold (once) and tell the buyer; `reason` is the key of the text they read. While a
        payment signed for the order can still land, nothing is released: it waits, to be verified again."""
        try:
            done = await self.orders.refund(order, reason)
        except PaymentMayLand:
            await self.wait_for_landing(order, f"refusing to refund ({reason}): a signed payment may still land")
            return False
        if done is not None:
            self.metrics.orders.labels("refunded").inc()
            await self.tell(self.notifier.refunded(done, reason))
        return done is not None

    async def wait_for_landing(self, order: Order, why: str) -> None:
        """Park the order as verifying until no payment signed for it can land."""
        due = await self.orders.wait_for_landing(order, why)
        if due is not None:
            log.info("order %s waits until %s: %s", order.id, due.isoformat(timespec="seconds"), why)

    async def delayed(self, order: Order) -> None:
        """Tell the buyer that their queued order waits (the Fragment service is down)."""
        await self.tell(self.notifier.delayed(order))

    async def alert_operator(self, text: str) -> None:
        if self.alert is not None:
            await self.tell(self.alert(text))

    @staticmethod
    async def tell(message: Awaitable[None]) -> None:
        """Send a notice or an alert; one that cannot be sent is logged and the order goes on."""
        try:
            await message
        except Exception:
            log.warning("could not send an order notice", exc_info=True)
