"""The order state machine: every change of an order's state, and the money that goes with it.

    created -> queued -> paying -> completed            (hold captured: cost and revenue)
                     \\-> verifying -> completed | refunded | queued
    created / queued -> refunded                        (hold released)

A state change and its ledger movement commit together. Each transition names the states it may
leave, so a late or repeated call (a worker that resumed, a duplicate answer) changes nothing; the
ledger keys `order:<id>:hold|capture|release` make the money idempotent as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anyio
import asyncpg
import msgspec

from shopbot.db.queries import queries
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

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Order:
        prepared = row["prepared"]
        return cls(row["id"], row["user_id"], row["product"], row["quantity"], row["recipient"],
                   row["recipient_name"], row["price"], row["currency"], row["state"], row["idempotency_key"],
                   row["fragment_order_id"], msgspec.json.decode(prepared) if prepared else None, row["cost_ton"],
                   row["attempts"], row["refund_reason"])


class AlreadyPlaced(Exception):
    """This confirmation placed an order already; `order` is that one."""

    def __init__(self, order: Order) -> None:
        self.order = order
        super().__init__(f"confirmation already placed order {order.id}")


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

    async def place(self, *, user_id: int, product: str, quantity: int, recipient: str, recipient_name: str,
                    price: Decimal, currency: str, confirmation: str | None = None) -> Order:
        """created → queued: the order row and the hold of its price commit together, or neither does
        (InsufficientFunds from the ledger leaves no order behind). A `confirmation` places at most one
        order: a second attempt raises AlreadyPlaced with the first order, and holds nothing."""
        await self.ledger.open_accounts(user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.insert_order(conn, user_id, product, quantity, recipient, recipient_name,
                                                    price, currency, confirmation)
            if row is None:
                existing = await queries.orders.order_by_confirmation(conn, user_id, confirmation)
                raise AlreadyPlaced(Order.from_row(existing))
            await self.ledger.hold(user_id=user_id, amount=price, key=f"order:{row['id']}:hold",
                                   reference=f"order:{row['id']}", memo=f"{quantity} {product} for @{recipient}",
                                   conn=conn)
            await queries.orders.set_order_queued(conn, row["id"])
        self._wake_worker()
        order = await self.get(row["id"])
        assert order is not None
        return order

    async def record_prepared(self, order: Order, fragment_order_id: str, prepared: dict[str, Any],
                              cost_ton: Decimal | None) -> None:
        """queued → paying: the signed payment is committed before anyone submits it."""
        await queries.orders.record_prepared(self.pool, order.id, fragment_order_id, _json.encode(prepared).decode(),
                                             int(prepared["valid_until"]), cost_ton)

    async def to_verifying(self, order: Order, error: str, delay: float) -> None:
        """A payment may have left: from now on the order is only verified, never paid anew."""
        await queries.orders.set_order_verifying(self.pool, order.id, error, delay)

    async def retry_later(self, order: Order, error: str, delay: float) -> None:
        await queries.orders.requeue_order(self.pool, order.id, error, delay)

    async def return_to_queue(self, order: Order, why: str) -> None:
        """Verified unpaid, and its stored payment can no longer land: pay it afresh."""
        await queries.orders.return_to_queue(self.pool, order.id, why)
        self._wake_worker()

    async def retry_now(self, order_id: int) -> bool:
        """An operator's retry: the order is due at once, in the state it is in (the worker decides what
        that means: pay a queued one, verify one that may have paid). False if it is not in progress."""
        due = await queries.orders.make_order_due(self.pool, order_id)
        if due is not None:
            self._wake_worker()
        return due is not None

    async def complete(self, order: Order, *, txid: str | None, cost_ton: Decimal | None,
                       cost: Decimal) -> Order | None:
        """→ completed, capturing the hold: the Fragment cost and the shop's revenue. None if already final."""
        await self.ledger.open_accounts(order.user_id, SystemAccount.SHOP_REVENUE, SystemAccount.FRAGMENT_COSTS)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.complete_order(conn, order.id, txid, cost_ton)
            if row is None:
                return None
            memo = f"Fragment {order.fragment_order_id or ''}; cost {cost_ton if cost_ton is not None else '?'} TON"
            await self.ledger.capture(user_id=order.user_id, amount=order.price, cost=cost,
                                      key=f"order:{order.id}:capture", reference=f"order:{order.id}", memo=memo,
                                      conn=conn)
        return Order.from_row(row)

    async def refund(self, order: Order, reason: str) -> Order | None:
        """→ refunded, releasing the hold back to the user. None if the order was already final."""
        await self.ledger.open_accounts(order.user_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await queries.orders.refund_order(conn, order.id, reason)
            if row is None:
                return None
            await self.ledger.release(user_id=order.user_id, amount=order.price, key=f"order:{order.id}:release",
                                      reference=f"order:{order.id}", memo=reason, conn=conn)
        log.info("order %s refunded: %s", order.id, reason)
        return Order.from_row(row)

    async def claim_delay_notices(self) -> list[Order]:
        return [Order.from_row(row) for row in await queries.orders.claim_delay_notices(self.pool)]
