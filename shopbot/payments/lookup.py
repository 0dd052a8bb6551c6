"""Heleket's payment/info, remembered: final answers for `[cache] payment_ttl`, others for 30 s.

A final answer (paid, cancelled, wrong_amount, ...) never changes, so asking again only costs a request
to Heleket. An answer that is not final (waiting, confirming, ...) is remembered for PENDING_SECONDS, so
a user pressing "Check payment" over and over asks Heleket at most once per invoice in that time. The
webhook takes a remembered answer only if it is final and says what the webhook says; otherwise it asks
(a final `paid` may still become a refund): Heleket's own word must never be hidden by what it said before.

The cache never decides a credit: every answer, remembered or not, still goes through
`Settlement.apply`, whose transaction in PostgreSQL records each confirmed state once and credits once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from shopbot.cache import Cache
from shopbot.payments.heleket import HeleketClient
from shopbot.payments.heleket_wire import Invoice

PENDING_SECONDS = 30.0


class KnownPayment(msgspec.Struct, frozen=True, kw_only=True):
    """Heleket's answer about one invoice, and when (wall clock, shared by instances) it was given."""

    info: Invoice
    asked_at: float


class PaymentLookup:
    """payment/info by order_id through the shop's cache."""

    def __init__(self, client: HeleketClient, cache: Cache | None, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.cache = cache
        self.pending_seconds = PENDING_SECONDS
        self.clock = clock

    async def remembered(self, order_id: str, *, fresh: bool = False) -> Invoice | None:
        """What Heleket said lately, if it still holds: any final answer; a pending one unless `fresh`."""
        if self.cache is None:
            return None
        known = await self.cache.get("payment", order_id, KnownPayment)
        if known is None or known.info.order_id != order_id:
            return None
        if known.info.is_final:
            return known.info
        age = self.clock() - known.asked_at
        return None if fresh or not 0 <= age < self.pending_seconds else known.info

    async def info(self, order_id: str, *, fresh: bool = False) -> Invoice:
        """What Heleket says about the invoice with `order_id`, remembered as the module says."""
        known = await self.remembered(order_id, fresh=fresh)
        if known is not None:
            return known
        return await self.ask(order_id)

    async def ask(self, order_id: str) -> Invoice:
        """Heleket's answer now, whatever is remembered; remembered in turn."""
        info = await self.client.payment_info(order_id=order_id)
        if self.cache is not None:
            await self.cache.put("payment", order_id, KnownPayment(info=info, asked_at=self.clock()))
        return info
