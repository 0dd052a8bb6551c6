"""What goods cost the shop: TON's rate in the shop currency, TON per star or Premium package, and margins.

The cost guard, the ledger's booked cost and the automatic prices all read the same TonRates, so an
order is judged, booked and priced at one rate. A rate is only ever as old as [pricing] max_rate_age
allows: with none that young the caller is told None, never an older guess.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

import anyio
import asyncpg

from shopbot.config.schema import PricingConfig
from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.fulfilment.orders import Order

log = logging.getLogger(__name__)
RATE_CACHE_SECONDS = 300.0  # Heleket's list is asked again once the cached rate is this old
RETRY_SECONDS = 30.0  # after a failed ask, Heleket is not asked again sooner (every order would ask)
CENT = Decimal("0.01")


class Quote(Protocol):
    """One line of an exchange-rate list: one unit of the asked currency costs `course` of `to`."""

    @property
    def to(self) -> str: ...

    @property
    def course(self) -> Decimal: ...


class ExchangeRates(Protocol):
    """Where TON's rate comes from: Heleket's exchange-rate list (the payments' client, wired in by the app).
    A failure to answer is a ShopbotError."""

    async def exchange_rates(self, currency: str) -> Sequence[Quote]: ...


@dataclass(frozen=True, slots=True)
class RateReading:
    rate: Decimal  # one TON in the shop currency
    at: float  # time.time() when Heleket gave it


class TonRates:
    """TON's price in the shop currency from Heleket's exchange-rate list, cached RATE_CACHE_SECONDS."""

    def __init__(
        self, heleket: ExchangeRates | None, currency: str, *, max_age: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.heleket = heleket
        self.currency = currency.upper()
        self.max_age = max_age
        self.clock = clock
        self._last: RateReading | None = None  # the newest good reading
        self._failed_at: float | None = None  # when Heleket last failed to give one
        self._asking = anyio.Lock()  # concurrent readers share one ask

    async def reading(self) -> RateReading | None:
        """The newest rate no older than max_age ([pricing] max_rate_age); asks Heleket's exchange-rate list
        when the cached one is RATE_CACHE_SECONDS old; on failure keeps the last good one while it is young
        enough; None when no rate younger than max_age is known."""
        async with self._asking:
            if self._stale() and not self._resting():
                await self._ask()
            return self.latest()

    async def rate(self) -> Decimal | None:
        reading = await self.reading()
        return reading.rate if reading is not None else None

    def latest(self) -> RateReading | None:
        """The newest reading no older than max_age, without asking Heleket (for /metrics scrapes)."""
        last = self._last
        return last if last is not None and self.clock() - last.at <= self.max_age else None

    def _stale(self) -> bool:
        return self._last is None or self.clock() - self._last.at >= min(RATE_CACHE_SECONDS, self.max_age)

    def _resting(self) -> bool:
        return self._failed_at is not None and self.clock() - self._failed_at < RETRY_SECONDS

    async def _ask(self) -> None:
        if self.heleket is None:
            return
        try:
            rates = await self.heleket.exchange_rates("TON")
        except ShopbotError as exc:
            self._failed_at = self.clock()
            log.warning("TON rate unavailable: %s", exc)
            return
        value = next((r.course for r in rates if r.to.upper() == self.currency), None)
        if value is None or not value > 0:
            self._failed_at = self.clock()
            log.warning("Heleket's exchange-rate list has no TON rate to %s", self.currency)
            return
        self._last, self._failed_at = RateReading(value, self.clock()), None


@dataclass(frozen=True, slots=True)
class UnitCosts:
    star: Decimal | None  # TON per star, from the newest stars order whose TON cost is known
    premium: dict[str, Decimal] = field(default_factory=dict)  # TON per Premium package, by "3" / "6" / "12"


async def unit_costs(pool: asyncpg.Pool) -> UnitCosts:
    """What Fragment asked for a star and for each Premium package, in TON, at the newest created orders
    (refused ones too: the guard records the cost of an order it will not pay)."""
    star: Decimal | None = None
    premium: dict[str, Decimal] = {}
    for row in await queries.orders.newest_unit_costs(pool):
        if row["product"] == "stars":
            star = row["ton"]
        else:
            premium[str(row["months"])] = row["ton"]
    return UnitCosts(star, premium)


def margin_percent(price: Decimal, cost: Decimal) -> Decimal:
    """(price - cost) / price * 100, to 2 places; a price of 0 or less has nothing left: -100."""
    if price <= 0:
        return Decimal("-100.00")
    return ((price - cost) / price * 100).quantize(CENT, rounding=ROUND_HALF_UP)


BELOW_MARGIN, NO_RATE = "below_margin", "no_rate"  # why the cost guard refused an order
REFUSAL_REASONS = (BELOW_MARGIN, NO_RATE)


@dataclass(frozen=True, slots=True)
class CostCheck:
    """The cost guard's verdict on one created order, before anything is signed."""

    refusal: str | None  # None: it may be paid; else BELOW_MARGIN or NO_RATE
    cost_ton: Decimal
    cost: Decimal | None  # in the shop currency, at `rate`; None without a rate
    rate: Decimal | None
    margin: Decimal | None  # percent of the price; None without a rate


def check_cost(price: Decimal, cost_ton: Decimal, rate: Decimal | None, min_margin_percent: float) -> CostCheck:
    """cost = TON × rate must be ≤ price × (1 − min_margin_percent / 100); no rate is a refusal too."""
    if rate is None:
        return CostCheck(NO_RATE, cost_ton, None, None, None)
    cost = cost_ton * rate
    allowed = price * (1 - Decimal(str(min_margin_percent)) / 100)
    return CostCheck(None if cost <= allowed else BELOW_MARGIN, cost_ton, cost, rate, margin_percent(price, cost))


def cost_alert(order: Order, check: CostCheck, pricing: PricingConfig, refunded: bool) -> str:
    """The operator's alert for an order the cost guard refused: cost, price and margin."""
    what = f"{order.quantity} {order.product} for @{order.recipient}"
    price = f"{money(order.price)} {order.currency}"
    after = "The buyer was refunded." if refunded else "The buyer is refunded once no earlier payment of it can land."
    then = "Further refusals for this reason are not alerted for an hour: see shopbot_orders_refused_total."
    ton = f"{check.cost_ton.normalize():f} TON"
    remedy = (
        "Automatic prices follow the cost at the next reprice, but never above [pricing] ceiling and "
        "premium_ceiling: if the cost is above them, raise them."
        if pricing.mode == "auto"
        else 'Raise the price (or let prices follow the cost: [pricing] mode = "auto") to sell again.'
    )
    if check.cost is None or check.rate is None:
        return (
            f"⚠️ Order #{order.id} ({what}) was not paid: no TON rate younger than {pricing.max_rate_age:g} s "
            f"is known from Heleket, so its cost of {ton} cannot be checked against the price {price}. Nothing "
            f"was signed. {after} Every order is refused until Heleket's exchange-rate list gives a TON rate "
            f"again. {then}"
        )
    return (
        f"⚠️ Order #{order.id} ({what}) was not paid: Fragment asks {ton} = {money(check.cost)} {order.currency} "
        f"(at {money(check.rate)} {order.currency}/TON) for a price of {price}, a margin of {check.margin}% "
        f"(the minimum is {pricing.min_margin_percent:g}%). Nothing was signed. "
        f"{after} {remedy} {then}"
    )


def money(amount: Decimal) -> str:
    """An amount for an operator's eyes: cents, or as many places as it needs beyond them (a crypto price)."""
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return f"{cents:f}" if cents == amount or abs(amount) >= 1 else f"{amount.normalize():f}"
