"""Automatic prices (`[pricing] mode = "auto"`): what a star and each Premium package cost now, plus the markup.

Every `refresh_seconds`: TON per unit (what Fragment asked at the newest orders) × TON's rate × (1 +
`markup_percent` / 100), rounded up to the step, kept within the floor and ceiling. A product whose cost,
or the rate, is not known keeps its price, and the log says why. The prices are stored like an admin's
(shop_settings), so every instance and its Shopfront use them; every change is audited with the actor
`pricing`, and a pass that changes nothing writes nothing.

Several instances may run it. A pass is claimed first, in one statement, so one instance reprices per half
refresh across them all: instances whose cached TON rates differ a little do not flip the price back and
forth. The write itself compares with the stored prices under the price writers' lock, so a pass that
races another (or an admin) still leaves one audit entry per change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

import anyio
import asyncpg
from anyio.abc import TaskStatus

from shopbot.config.schema import PricingConfig
from shopbot.db.queries import queries
from shopbot.fulfilment.costs import RateReading, UnitCosts, unit_costs
from shopbot.fulfilment.products import PriceList
from shopbot.lifecycle import Lifecycle

log = logging.getLogger(__name__)
STAR_PLACES = 6  # decimals a stored star price may carry, as an admin's may (shopbot/bot/admin/settings.py)
PREMIUM_PLACES = 2


class Rates(Protocol):
    async def reading(self) -> RateReading | None: ...


class PriceStore(Protocol):
    """Where prices live (shopbot/bot/admin/settings.py ShopSettings): `change` is applied to the stored
    prices inside the store's own transaction; what changed, or None."""

    async def reprice(self, change: Callable[[PriceList], PriceList], *, reason: str = "") -> object | None: ...


def round_up(value: Decimal, step: Decimal) -> Decimal:
    """`value` rounded up to a whole number of `step`s: a price never falls below what the markup asks."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def bounded(value: Decimal, step: Decimal, places: int, floor: Decimal, ceiling: Decimal) -> Decimal:
    """The price for `value` (cost with markup): up to the step and to what a price may carry, then within
    floor..ceiling, so a bad reading can neither give the goods away nor price them out of reach."""
    priced = round_up(value, step)
    exponent = priced.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:  # a step finer than a price may be
        priced = priced.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)
    return min(max(priced, floor), ceiling)


def auto_prices(
    current: PriceList, costs: UnitCosts, rate: Decimal | None, pricing: PricingConfig
) -> tuple[PriceList, list[str]]:
    """The prices today's costs ask for, and why each product that keeps `current`'s price keeps it."""
    if rate is None:
        return current, ["no TON rate younger than [pricing] max_rate_age is known: every price stays"]
    markup = 1 + Decimal(str(pricing.markup_percent)) / 100
    kept = []
    star = current.star_price
    if costs.star is None:
        kept.append("stars: no order has told what a star costs in TON yet")
    else:
        star = bounded(costs.star * rate * markup, pricing.price_step, STAR_PLACES, pricing.floor, pricing.ceiling)
    premium = dict(current.premium)
    for months in sorted(premium, key=int):
        cost = costs.premium.get(months)
        if cost is None:
            kept.append(f"premium {months} months: no order has told what it costs in TON yet")
            continue
        premium[months] = bounded(
            cost * rate * markup,
            pricing.premium_step,
            PREMIUM_PLACES,
            pricing.premium_floor[months],
            pricing.premium_ceiling[months],
        )
    return PriceList(star, premium), kept


def describe_inputs(costs: UnitCosts, reading: RateReading | None, currency: str, pricing: PricingConfig) -> str:
    """What a pass priced from, for the audit entry's reason: the rate, the unit costs and the markup."""
    parts = [
        f"1 TON = {reading.rate} {currency}" if reading else "no TON rate",
        f"star {costs.star} TON" if costs.star is not None else "star cost unknown",
    ]
    parts += [f"premium {months} {ton} TON" for months, ton in sorted(costs.premium.items(), key=lambda i: int(i[0]))]
    parts.append(f"markup {pricing.markup_percent:g} %")
    return "; ".join(parts)


class Repricer:
    """Recomputes the prices every `[pricing] refresh_seconds` while the shop runs (auto mode only)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pricing: PricingConfig,
        store: PriceStore,
        rates: Rates,
        lifecycle: Lifecycle,
        *,
        currency: str,
        costs: Callable[[asyncpg.Pool], Awaitable[UnitCosts]] = unit_costs,
    ) -> None:
        self.pool = pool
        self.pricing = pricing
        self.store = store
        self.rates = rates
        self.lifecycle = lifecycle
        self.currency = currency
        self.costs = costs

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """A pass at start and every refresh_seconds after, until the shop stops."""
        task_status.started()
        while not self.lifecycle.stopping.is_set():
            try:
                if await queries.pricing.claim_pricing_pass(self.pool, self.pricing.refresh_seconds / 2):
                    await self.reprice()
            except (asyncpg.PostgresError, OSError) as exc:  # the next pass tries again
                log.warning("prices not recomputed: %s", exc)
            await self.lifecycle.sleep(self.pricing.refresh_seconds)

    async def reprice(self) -> object | None:
        """One pass: the prices from today's costs, stored when they differ; what changed, or None."""
        reading = await self.rates.reading()
        costs = await self.costs(self.pool)
        rate = reading.rate if reading is not None else None
        kept: list[str] = []

        def change(current: PriceList) -> PriceList:
            prices, why = auto_prices(current, costs, rate, self.pricing)
            kept[:] = why
            return prices

        changed = await self.store.reprice(change, reason=describe_inputs(costs, reading, self.currency, self.pricing))
        for why in kept:  # no rate is worth a warning; a package nobody bought yet is not
            log.log(logging.WARNING if rate is None else logging.INFO, "automatic prices: %s", why)
        if changed is not None:
            log.info("automatic prices changed: %s", changed)
        return changed
