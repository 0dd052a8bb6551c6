"""Margins: what each product sells for against what it costs the shop now, for the Prices screen and
the `shopbot_price_margin_percent{product}` gauge.

The cost is Fragment's TON cost at the newest orders (`unit_costs`) times Heleket's TON rate
(`TonRates`, the one the cost guard uses); either missing makes the cost, and the margin, unknown,
never a guess. A scrape reads the unit costs at most once per `ttl` and takes the rate TonRates already
holds: no SQL on most scrapes and never a call to Heleket. The admin screen reads both afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from shopbot.fulfilment.costs import RateReading, TonRates, UnitCosts, margin_percent, unit_costs
from shopbot.fulfilment.products import PREMIUM_MONTHS, PriceList
from shopbot.metrics import Metrics, Refresh

PRODUCTS = ("stars", *(f"premium_{months}" for months in PREMIUM_MONTHS))  # the gauge's label values
GAUGE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Margin:
    product: str  # stars (per star), premium_3, premium_6, premium_12
    price: Decimal  # in the shop currency, what a user is quoted now
    cost: Decimal | None  # in the shop currency; None: no known TON cost or no TON rate
    percent: Decimal | None  # margin_percent(price, cost); None when the cost is unknown


@dataclass(frozen=True, slots=True)
class MarginReading:
    margins: tuple[Margin, ...]
    rate: RateReading | None  # the TON rate the costs were computed at
    units: UnitCosts


def margins_of(prices: PriceList, units: UnitCosts, rate: Decimal | None) -> tuple[Margin, ...]:
    """Each product's price, cost and margin at this TON rate."""
    found: list[Margin] = []
    for product in PRODUCTS:
        if product == "stars":
            price, ton = prices.star_price, units.star
        else:
            months = product.removeprefix("premium_")
            price, ton = prices.premium[months], units.premium.get(months)
        cost = ton * rate if ton is not None and rate is not None else None
        found.append(Margin(product, price, cost, margin_percent(price, cost) if cost is not None else None))
    return tuple(found)


class MarginBoard:
    """Reads margins for the admin screen (fresh) and for the gauge (unit costs at most once per `ttl`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        rates: TonRates,
        prices: Callable[[], PriceList],
        *,
        ttl: float = GAUGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.rates = rates
        self.prices = prices
        self.ttl = ttl
        self.clock = clock
        self._units: tuple[float, UnitCosts] | None = None  # when read, and what

    async def read(self) -> MarginReading:
        """The margins now: the newest unit costs, the rate TonRates holds (asking Heleket only if stale)."""
        rate = await self.rates.reading()
        units = await unit_costs(self.pool)
        self._units = (self.clock(), units)
        return self._reading(rate, units)

    async def cached(self) -> MarginReading:
        """Unit costs read at most `ttl` ago and the rate TonRates already holds (Heleket is never asked),
        against the prices of this moment."""
        if self._units is None or self.clock() - self._units[0] >= self.ttl:
            self._units = (self.clock(), await unit_costs(self.pool))
        return self._reading(self.rates.latest(), self._units[1])

    def _reading(self, rate: RateReading | None, units: UnitCosts) -> MarginReading:
        return MarginReading(margins_of(self.prices(), units, rate.rate if rate else None), rate, units)

    def gauge(self, metrics: Metrics) -> Refresh:
        """The scrape-time refresh of `shopbot_price_margin_percent`; NaN while a product's cost is unknown."""

        async def refresh() -> None:
            for margin in (await self.cached()).margins:
                value = float(margin.percent) if margin.percent is not None else math.nan
                metrics.price_margin.labels(margin.product).set(value)

        return refresh
