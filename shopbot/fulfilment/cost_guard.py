"""The cost guard, between creating a Fragment order and signing its payment: what the payment legs add up
to in TON, at TON's rate (costs.py), must leave [pricing] min_margin_percent of the price, else nothing is
signed and the hold is released; so does a missing rate (never sold blind). The operator is alerted at most
once an hour per reason."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from shopbot.config.schema import PricingConfig
from shopbot.fulfilment.costs import BELOW_MARGIN, CostCheck, TonRates, check_cost, cost_alert
from shopbot.fulfilment.orders import Order, Orders
from shopbot.fulfilment.outcomes import Outcomes
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
ALERT_EVERY = 3600.0  # seconds between two admin alerts for the same reason of the cost guard


class CostGuard:
    """Judges an order's cost before it is signed, and refuses (refunds) one that would sell at a loss."""

    def __init__(
        self, orders: Orders, outcomes: Outcomes, rates: TonRates, pricing: PricingConfig, metrics: Metrics
    ) -> None:
        self.orders = orders
        self.outcomes = outcomes
        self.rates = rates  # TON in the shop currency
        self.pricing = pricing
        self.metrics = metrics
        self._alerted: dict[str, float] = {}  # the last alert per reason (monotonic seconds)

    async def check(self, order: Order, cost_ton: Decimal) -> CostCheck:
        # A rate in another currency than the order's would judge nothing: an order priced before the shop
        # changed currency is refused as unconfirmed.
        rate = await self.rates.rate() if order.currency.upper() == self.rates.currency else None
        return check_cost(order.price, cost_ton, rate, self.pricing.min_margin_percent)

    async def refuse(self, order: Order, check: CostCheck) -> None:
        """The cost guard said no: nothing was signed this time, so the hold is released (once no earlier
        signature can land: the refusal is remembered for that), the buyer told, the operator alerted."""
        assert check.refusal is not None
        reason = "refund-reason-price-changed" if check.refusal == BELOW_MARGIN else "refund-reason-price-unconfirmed"
        self.metrics.orders_refused.labels(check.refusal).inc()
        log.warning(
            "order %s refused before signing (%s): %s TON, cost %s, price %s %s, margin %s%%",
            order.id,
            check.refusal,
            check.cost_ton,
            check.cost,
            order.price,
            order.currency,
            check.margin,
        )
        await self.orders.remember_refusal(order, reason)
        refunded = await self.outcomes.refund(order, reason)
        last = self._alerted.get(check.refusal)
        if last is not None and time.monotonic() - last < ALERT_EVERY:
            return
        self._alerted[check.refusal] = time.monotonic()
        await self.outcomes.alert_operator(cost_alert(order, check, self.pricing, refunded))
