"""The order state machine: every change of an order's state, and the money that goes with it.

    created -> queued -> paying -> completed            (hold captured: cost and revenue)
                     \\-> verifying -> completed | refunded | queued
    created / queued -> refunded                        (hold released)

A discount from a promo code is spent in the transaction that places the order (whose price, and so
its hold, is already the discounted total) and is the user's again in the transaction that refunds it.

A state change and its ledger movement commit together. A hold is never released while a payment we
signed for the order can still land (`prepared_until`): the refund itself refuses (PaymentMayLand), so
no caller can forget to ask. One payment may pay a batch of orders: it is stored on every one of them in
one transaction (all of them, or none), and each order is then completed or refunded on its own.
Each transition names the states it may
leave, so a late or repeated call (a worker that resumed, a duplicate answer) changes nothing; the
ledger keys `order:<id>:hold|capture|release` make the money idempotent as well.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import msgspec

from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.fulfilment.promo import Discount
from shopbot.ledger import Ledger, SystemAccount

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    user_id: int
    product: str
    quantity: int
    recipient: str
    recipient_name: str
    price: Decimal
    currency: str
    state: str
    idempotency_key: str
    fragment_order_id: str | None
    prepared: dict[str, Any] | None
    cost_ton: Decimal | None
    attempts: int
    refund_reason: str | None
    prepared_until: datetime | None = None  # no payment signed for the order can land after this
    refusal: str | None = None  # a definite refusal at submit, kept until no payment can land

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Order:
        prepared = row["prepared"]
        return cls(
            row["id"],
            row["user_id"],
            row["product"],
            row["quantity"],
            row["recipient"],
            row["recipient_name"],
            row["price"],
            row["currency"],
            row["state"],
            row["idempotency_key"],
            row["fragment_order_id"],
            msgspec.json.decode(prepared) if prepared else None,
            row["cost_ton"],
            row["attempts"],
            row["refund_reason"],
            row["prepared_until"],
            row["refusal"],
        )


class PaymentMayLand(ShopbotError):
    """A payment signed for the order can still land until `until`: its hold stays where it is."""

    def __init__(self, order_id: int, until: datetime | None) -> None:
        self.order_id = order_id
        self.until = until
        super().__init__(f"order {order_id}: a signed payment can still land until {until}; not refunded")


class DiscountGone(ShopbotError):
    """The discount the quote counted on was spent meanwhile (by another order): nothing was placed."""

    def __init__(self, redemption_id: int) -> None:
        self.redemption_id = redemption_id
        super().__init__(f"promo redemption {redemption_id} is no longer available")


class AlreadyPlaced(Exception):
    """This confirmation placed an order already; `order` is that one."""

    def __init__(self, order: Order) -> None:
        self.order = order
        super().__init__(f"confirmation already placed order {order.id}")


class _NotAll(Exception):
    """A batch write reached only some of its orders: rolled back."""


class Orders:
    """Orders in PostgreSQL, with their holds, captures and releases in the ledger."""

    def __init__(self, pool: asyncpg.Pool, ledger: Ledger) -> None:
        self.pool = pool
        self.ledger = ledger
        self.work_available = anyio.Event()

    def _wake_worker(self) -> None:
        self.work_available.set()
        self.work_available = anyio.Event()

    async def get(self, order_id: int) -> Order | None:
        row = await queries.orders.get_order(self.pool, order_id)
        return Order.from_row(row) if row else None

    async def place(
        self,
        *,
        user_id: int,
        product: str,
        quantity: int,
        recipient: str,
        recipient_name: str,
        price: Decimal,
        currency: str,
        confirmation: str | None = None,
        discount: Discount | None = None,
    ) -> Order:
        """created → queued: the order row and the hold of its price commit together, or neither does
        (InsufficientFunds from the ledger leaves no order behind). A `confirmation` places at most one
        order: a second attempt raises AlreadyPlaced with the first order, and holds nothing. With a
        `discount`, `price` is its total and the discount is spent in the same transaction (DiscountGone,
        and nothing placed, if it was spent already)."""
        if discount is not None and price != discount.total:
            raise ValueError(f"a discounted order's price is the discount's total, {discount.total}, not {price}")
        await self.ledger.open_accounts(user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.insert_order(
                conn,
                user_id,
                product,
                quantity,
                recipient,
                recipient_name,
                price,
                currency,
                confirmation,
                secrets.token_hex(8),
            )
            if row is None:
                existing = await queries.orders.order_by_confirmation(conn, user_id, confirmation)
                raise AlreadyPlaced(Order.from_row(existing))
            if discount is not None:
                spent = await queries.promo.consume_discount(
                    conn, discount.redemption_id, user_id, row["id"], discount.total + discount.amount, discount.amount
                )
                if spent is None:
                    raise DiscountGone(discount.redemption_id)
            await self.ledger.hold(
                user_id=user_id,
                amount=price,
                key=f"order:{row['id']}:hold",
                reference=f"order:{row['id']}",
                memo=f"{quantity} {product} for @{recipient}",
                conn=conn,
            )
            await queries.orders.set_order_queued(conn, row["id"])
        self._wake_worker()
        order = await self.get(row["id"])
        assert order is not None
        return order

    async def record_prepared(
        self,
        orders: Sequence[Order],
        fragment_order_ids: Sequence[str],
        prepared: dict[str, Any],
        costs_ton: Sequence[Decimal | None],
        *,
        margin: float,
    ) -> bool:
        """queued → paying, for every order of a batch at once: their one signed payment is committed on each
        of them before anyone submits it. False, and nothing written, when any of them was no longer there to
        pay (then the payment must not be submitted). `margin`: seconds after its valid_until during which a
        payment may still land."""
        ids = [order.id for order in orders]
        return await self._all_or_none(
            ids,
            queries.orders.record_prepared,
            ids,
            list(fragment_order_ids),
            _json.encode(prepared).decode(),
            int(prepared["valid_until"]),
            list(costs_ton),
            margin,
        )

    async def record_resigned(self, orders: Sequence[Order], prepared: dict[str, Any], *, margin: float) -> bool:
        """The newest signature of a payment (the library re-signed it), committed on every order it pays before
        it is submitted; prepared_until only ever grows. False, and nothing written, when any of them is not
        being paid any more."""
        ids = [order.id for order in orders]
        return await self._all_or_none(
            ids,
            queries.orders.record_resigned,
            ids,
            _json.encode(prepared).decode(),
            int(prepared["valid_until"]),
            margin,
        )

    async def _all_or_none(self, ids: list[int], query: Any, *args: Any) -> bool:
        """Run a write that returns the ids it wrote; commit it only if it wrote every one of `ids`."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    written = {row["id"] for row in await query(conn, *args)}
                    if written != set(ids):
                        raise _NotAll
            except _NotAll:
                return False
        return True

    async def remember_refusal(self, order: Order, reason: str) -> None:
        await queries.orders.remember_refusal(self.pool, order.id, reason)

    async def wait_for_landing(self, order: Order, why: str) -> datetime | None:
        """→ verifying, due once no payment signed for it can land; None if the order is already final."""
        due: datetime | None = await queries.orders.wait_for_landing(self.pool, order.id, why)
        return due

    async def to_verifying(self, order: Order, error: str, delay: float) -> None:
        """A payment may have left: from now on the order is only verified, never paid anew."""
        await queries.orders.set_order_verifying(self.pool, order.id, error, delay)

    async def retry_later(self, order: Order, error: str, delay: float) -> None:
        await queries.orders.requeue_order(self.pool, order.id, error, delay)

    async def return_to_queue(self, order: Order, why: str) -> bool:
        """Verified unpaid, and no payment signed for it can land any more: pay it afresh. False while one
        still can (or the order is no longer verifying)."""
        back = await queries.orders.return_to_queue(self.pool, order.id, why)
        if back is not None:
            self._wake_worker()
        return back is not None

    async def retry_now(self, order_id: int) -> bool:
        """An operator's retry: the order is due at once, in the state it is in (the worker decides what
        that means: pay a queued one, verify one that may have paid). False if it is not in progress."""
        due = await queries.orders.make_order_due(self.pool, order_id)
        if due is not None:
            self._wake_worker()
        return due is not None

    async def complete(
        self, order: Order, *, txid: str | None, cost_ton: Decimal | None, cost: Decimal
    ) -> Order | None:
        """→ completed, capturing the hold: the Fragment cost and the shop's revenue. None if already final."""
        await self.ledger.open_accounts(order.user_id, SystemAccount.SHOP_REVENUE, SystemAccount.FRAGMENT_COSTS)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.complete_order(conn, order.id, txid, cost_ton)
            if row is None:
                return None
            memo = f"Fragment {order.fragment_order_id or ''}; cost {cost_ton if cost_ton is not None else '?'} TON"
            await self.ledger.capture(
                user_id=order.user_id,
                amount=order.price,
                cost=cost,
                key=f"order:{order.id}:capture",
                reference=f"order:{order.id}",
                memo=memo,
                conn=conn,
            )
        return Order.from_row(row)

    async def refund(self, order: Order, reason: str) -> Order | None:
        """→ refunded, releasing the hold back to the user. None if the order was already final;
        PaymentMayLand (and nothing changes) while a payment signed for it can still land."""
        await self.ledger.open_accounts(order.user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.refund_order(conn, order.id, reason)
            if row is None:
                current = await queries.orders.get_order(conn, order.id)
                if current is not None and current["state"] not in ("completed", "refunded"):
                    raise PaymentMayLand(order.id, current["prepared_until"])
                return None
            await self.ledger.release(
                user_id=order.user_id,
                amount=order.price,
                key=f"order:{order.id}:release",
                reference=f"order:{order.id}",
                memo=reason,
                conn=conn,
            )
            await queries.promo.restore_discount(conn, order.id)
        log.info("order %s refunded: %s", order.id, reason)
        return Order.from_row(row)

    async def claim_delay_notices(self) -> list[Order]:
        return [Order.from_row(row) for row in await queries.orders.claim_delay_notices(self.pool)]
