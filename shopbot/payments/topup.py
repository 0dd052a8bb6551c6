"""Top-ups: our invoice row first, then Heleket's invoice for it.

The row is committed before Heleket is called, so a webhook that beats the create response, or a
crash between the two, still finds its invoice by order_id. If Heleket cannot be reached the row
stays 'creating' and the reconciler finishes the job (Heleket answers a repeated order_id with
the invoice it already made, so asking again never makes a second one).

A user may have at most `[shop] max_open_invoices` invoices that can still be paid: counted and created
under a per-user lock, so parallel requests cannot slip past the limit. "Check payment" asks Heleket
through the lookup, which remembers a pending answer for 30 s: pressing it over and over costs Heleket
one request per invoice per 30 s.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import msgspec

from shopbot.cache import Cache
from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.errors import Refused
from shopbot.payments.heleket import HeleketCircuitOpenError, HeleketClient, HeleketError, HeleketRateLimitedError
from shopbot.payments.heleket_wire import CurrencyOption
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.settle import Settlement

log = logging.getLogger(__name__)
LIMITS_CACHE_SECONDS = 600.0
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class TopUpInvoice:
    id: int
    order_id: str
    amount: Decimal
    currency: str
    url: str
    expires_at: datetime | None


class TooManyOpenInvoices(Refused):
    """The user already has `[shop] max_open_invoices` invoices that can be paid; `open` lists them, the
    first to expire first."""

    def __init__(self, invoices: list[TopUpInvoice]) -> None:
        self.open = invoices
        first = invoices[0].expires_at if invoices else None
        self.first_expiry = first
        super().__init__(
            "too_many_open",
            f"{len(invoices)} unpaid top-ups are open already; pay one or wait until "
            "one expires" + (f" (the first at {first:%H:%M} UTC)" if first else ""),
        )


@dataclass(frozen=True, slots=True)
class TopUpLimits:
    minimum: Decimal
    maximum: Decimal


def currency_options(entries: tuple[str, ...]) -> list[CurrencyOption] | None:
    """`[heleket] currencies` ("USDT/tron", "TON") as Heleket's allow-list."""
    options = []
    for entry in entries:
        coin, _, network = entry.partition("/")
        options.append(CurrencyOption(currency=coin.upper(), network=network.lower() or None))
    return options or None


class TopUps:
    """Creates top-up invoices within the shop's and Heleket's limits."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: HeleketClient | None,
        config: Config,
        settlement: Settlement | None = None,
        cache: Cache | None = None,
        lookup: PaymentLookup | None = None,
    ) -> None:
        self.pool = pool
        self.client = client
        self.config = config
        self.settlement = settlement
        self.cache = cache
        self.lookup = lookup if lookup is not None or client is None else PaymentLookup(client, cache)
        self._limits: tuple[float, TopUpLimits] | None = None

    async def limits(self) -> TopUpLimits:
        """The configured range, narrowed to what Heleket's coins accept (remembered 10 minutes)."""
        shop = self.config.shop
        configured = TopUpLimits(shop.min_topup, shop.max_topup)
        if self.client is None:
            return configured
        if self._limits and time.monotonic() - self._limits[0] < LIMITS_CACHE_SECONDS:
            return self._limits[1]
        try:
            limits = await self._heleket_limits(configured)
        except HeleketError as exc:
            log.warning("Heleket's limits are unavailable (%s); using the configured ones", exc)
            return configured
        self._limits = (time.monotonic(), limits)
        return limits

    async def _heleket_limits(self, configured: TopUpLimits) -> TopUpLimits:
        assert self.client is not None
        wanted = {option.currency for option in currency_options(self.config.heleket.currencies) or []}
        services = [
            s for s in await self.client.services() if s.is_available and (not wanted or s.currency.upper() in wanted)
        ]
        minimums, maximums = [], []
        for coin in sorted({s.currency.upper() for s in services}):
            course = await self._course(coin)
            if course is None:
                continue
            for service in (s for s in services if s.currency.upper() == coin):
                minimums.append(service.limit.min_amount * course)
                maximums.append(service.limit.max_amount * course)
        if not minimums:
            return configured
        return TopUpLimits(
            max(configured.minimum, min(minimums).quantize(CENT)), min(configured.maximum, max(maximums).quantize(CENT))
        )

    async def _course(self, coin: str) -> Decimal | None:
        currency = self.config.shop.currency
        if coin == currency:
            return Decimal(1)
        assert self.client is not None
        for rate in await self.client.exchange_rates(coin):
            if rate.to.upper() == currency:
                return rate.course
        return None

    async def create(self, user_id: int, amount: Decimal) -> TopUpInvoice:
        """A payable invoice for `amount` in the shop currency, or Refused saying why not."""
        if self.client is None or not self.config.web.public_url:
            raise Refused("not_configured", "top-ups are not set up on this shop yet")
        amount = amount.quantize(CENT)
        limits = await self.limits()
        if amount < limits.minimum:
            raise Refused("too_small", f"the smallest top-up is {limits.minimum} {self.config.shop.currency}")
        if amount > limits.maximum:
            raise Refused("too_large", f"the largest top-up is {limits.maximum} {self.config.shop.currency}")
        heleket = self.config.heleket
        row = await self._open_invoice(user_id, amount)
        try:
            invoice = await self.client.create_invoice(
                amount=amount,
                currency=row["currency"],
                order_id=row["order_id"],
                url_callback=self.config.web.public_url.rstrip("/") + "/webhook/heleket",
                lifetime=heleket.lifetime,
                currencies=currency_options(heleket.currencies),
            )
        except HeleketError as exc:
            # Refused, or never sent (the circuit is open): no invoice exists at Heleket, so ours is
            # closed now instead of waiting for the reconciler to give up on it.
            if not exc.temporary or isinstance(exc, (HeleketCircuitOpenError, HeleketRateLimitedError)):
                await queries.invoices.mark_invoice_failed(self.pool, row["id"], str(exc))
            raise Refused("unavailable", "the payment service is unavailable right now; try again soon") from exc
        expires = datetime.fromtimestamp(invoice.expired_at, UTC) if invoice.expired_at else None
        stored = await queries.invoices.record_heleket_invoice(
            self.pool, row["id"], invoice.uuid, invoice.url, invoice.status, expires
        )
        return TopUpInvoice(
            stored["id"],
            stored["order_id"],
            stored["amount"],
            stored["currency"],
            stored["url"] or "",
            stored["expires_at"],
        )

    async def _open_invoice(self, user_id: int, amount: Decimal) -> asyncpg.Record:
        """Our row for a new invoice, committed; TooManyOpenInvoices if the user has enough open ones."""
        async with self.pool.acquire() as conn, conn.transaction():
            await queries.invoices.lock_user_invoices(conn, user_id)
            rows = await queries.invoices.open_invoices_of_user(conn, user_id)
            if len(rows) >= self.config.shop.max_open_invoices:
                raise TooManyOpenInvoices(
                    [
                        TopUpInvoice(
                            r["id"], r["order_id"], r["amount"], r["currency"], r["url"] or "", r["expires_at"]
                        )
                        for r in rows
                    ]
                )
            return await queries.invoices.create_invoice(
                conn, user_id, amount, self.config.shop.currency, secrets.token_hex(4), self.config.heleket.lifetime
            )

    async def check(self, user_id: int, invoice_id: int) -> str | None:
        """The user's "Check payment" button: ask Heleket once about their invoice (an answer from the last
        30 s, or a final one, may come from the cache) and apply the answer (crediting it if paid). Returns the
        invoice's status, or None if it is not this user's."""
        invoice = await queries.invoices.invoice_by_id(self.pool, invoice_id)
        if invoice is None or invoice["user_id"] != user_id:
            return None
        if invoice["is_final"] or self.lookup is None or self.settlement is None:
            return str(invoice["status"])
        try:
            asked = await self.lookup.remembered(invoice["order_id"]) is None
            info = await self.lookup.info(invoice["order_id"])
            if asked:
                await queries.invoices.stamp_invoice_checked(self.pool, invoice_id)
        except HeleketError as exc:
            raise Refused("unavailable", "the payment service is unavailable right now; try again soon") from exc
        await self.settlement.apply(info, source="reconciler", payload=msgspec.to_builtins(info))
        refreshed = await queries.invoices.invoice_by_id(self.pool, invoice_id)
        return str(refreshed["status"]) if refreshed else None
