"""The order worker: the supervised service that takes due orders under the wallet's lock and hands them to
the payer (payer.py), which pays queued orders or resolves an uncertain one.

A wallet pays one external message at a time and each takes seconds to land, so queued orders are paid in
batches: each step first resolves, one at a time, a due order whose payment may be under way (paying or
verifying: it may hold money in flight); only when there is none does it claim up to `batch` due queued
orders at once (one statement) and have them paid with one payment. `batch` is as many orders as one payment
from the wallet carries (its message limit over the legs per order: a KYC order has a Fragment leg and a fee
leg, a no-KYC order one middle leg), capped by [fragment] batch_orders (1: one by one).

Payments from one wallet are serialised by a PostgreSQL advisory lock (wallet_lock.py), so this holds across
several shopbot instances; claimed orders are leased for as long as one step can take (a batch's step longer),
so a worker that lost its lock mid-step is not joined by another on the same orders. Orders a dead worker left
half-way are resumed before anything new is paid. Before each step that spends (signing, submitting) the
payer checks that this worker still holds the lock; without it, it stops, and the loop takes the lock again.
While the Fragment circuit is open nothing is worked on, and the buyers of queued orders are told of the
delay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import asyncpg
from anyio.abc import TaskStatus

from shopbot.config.schema import PricingConfig
from shopbot.db.pool import DatabaseBusyError, database_answers, is_outage
from shopbot.db.queries import queries
from shopbot.fulfilment.cost_guard import CostGuard
from shopbot.fulfilment.costs import TonRates
from shopbot.fulfilment.fragment import FragmentClient, step_seconds
from shopbot.fulfilment.orders import Order, Orders
from shopbot.fulfilment.outcomes import OrderNotifier, Outcomes
from shopbot.fulfilment.payer import Payer, backoff
from shopbot.fulfilment.wallet_lock import LockLost, WalletLock, open_wallet_lock
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.notify import Alert

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0


class OrderWorker:
    """A supervised service: works the due orders under the wallet lock, queued ones in batches (its payer
    spends)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        orders: Orders,
        client: FragmentClient,
        breaker: CircuitBreaker,
        lifecycle: Lifecycle,
        metrics: Metrics,
        notifier: OrderNotifier,
        *,
        rates: TonRates,
        pricing: PricingConfig,
        alert: Alert | None = None,
    ) -> None:
        self.pool = pool
        self.orders = orders
        self.client = client
        self.breaker = breaker
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.lease = step_seconds(client.config)
        self.batch = client.config.orders_per_payment  # queued orders paid with one payment, at most
        # A batch creates its Fragment orders within one step's time, then signs, stores and submits within
        # another: its orders are leased for both.
        self.batch_lease = self.lease * (2 if self.batch > 1 else 1)
        self.outcomes = Outcomes(orders, rates, metrics, notifier, alert)
        cost_guard = CostGuard(orders, self.outcomes, rates, pricing, metrics)
        self.payer = Payer(pool, orders, client, breaker, metrics, self.outcomes, cost_guard)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not self.lifecycle.stopping.is_set():
            try:
                async with open_wallet_lock(self.pool, self.client.address) as lock:
                    await self._serve(lock)
            except (LockLost, DatabaseBusyError) as trouble:
                # Whatever step was under way has stopped (nothing is signed or submitted past a write that did
                # not happen); its order is leased and resumed once the lock is taken again.
                self.metrics.errors.labels("order_worker").inc()
                log.warning("%s; taking the wallet lock again", trouble)
                await self._idle(IDLE_POLL_SECONDS)

    async def _serve(self, lock: WalletLock) -> None:
        await lock.acquire()
        try:
            # Under the lock, so no worker that holds it is in the middle of an order: orders a dead worker
            # left half-way are resumed before anything new is paid, leases or not.
            await queries.orders.make_unfinished_due(self.pool)
        finally:
            with anyio.CancelScope(shield=True):
                await lock.release()
        while not self.lifecycle.stopping.is_set():
            circuit = await self.breaker.status()
            if circuit.state == OPEN:
                await self._tell_delayed()
                await self._idle(min(circuit.retry_after, 5.0))
                continue
            worked = await self.work_once(lock)
            if not worked:
                await self._idle(IDLE_POLL_SECONDS)

    async def _idle(self, seconds: float) -> None:
        wake = self.orders.work_available
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as group:

                async def stop_on(event: anyio.Event) -> None:
                    await event.wait()
                    group.cancel_scope.cancel()

                group.start_soon(stop_on, wake)
                group.start_soon(stop_on, self.lifecycle.stopping)

    async def work_once(self, lock: WalletLock) -> bool:
        """Under the wallet lock, resolve one due order whose payment may be under way or, when there is none,
        pay a batch of due queued orders; False when nothing was due."""
        await lock.acquire()
        try:
            row = await queries.orders.claim_due_unsettled(self.pool, self.lease)
            if row is not None:
                orders = [Order.from_row(row)]
            else:
                rows = await queries.orders.claim_due_queued(self.pool, self.batch, self.batch_lease)
                orders = sorted((Order.from_row(r) for r in rows), key=lambda order: order.id)
            if not orders:
                return False
            # Shielded: once a payment is under way, a stop waits for its answer (within the grace period); a
            # batch still being made stops creating orders, as it does once it spent one step's time on them.
            with anyio.CancelScope(shield=True):
                try:
                    if row is not None:
                        await self.payer.process(orders[0], lock)
                    else:
                        await self.payer.pay(orders, lock, stopping=self._batch_done_by(time.monotonic() + self.lease))
                except (asyncpg.PostgresError, OSError, ValueError, KeyError, TypeError) as exc:
                    if is_outage(exc) and not await database_answers(self.pool):
                        # The database went away mid-step: the outage's trouble, not these orders'. The supervisor
                        # restarts the worker once it answers, and every step is safe to resume from where it
                        # stopped (their leases end, and unfinished orders are made due before anything new).
                        raise
                    # A bug or a database blip must not stop every other order behind these.
                    self.metrics.errors.labels("order_worker").inc()
                    log.exception(
                        "orders %s failed unexpectedly; trying them again later", ", ".join(str(o.id) for o in orders)
                    )
                    for order in orders:  # an order settled meanwhile stays as it is
                        await self.orders.retry_later(order, "unexpected error; see the log", backoff(order.attempts))
            return True
        finally:
            with anyio.CancelScope(shield=True):
                await lock.release()

    def _batch_done_by(self, deadline: float) -> Callable[[], bool]:
        """When a batch stops creating Fragment orders: the shop is stopping, or it spent its time on them."""
        return lambda: self.lifecycle.stopping.is_set() or time.monotonic() > deadline

    async def _tell_delayed(self) -> None:
        """While the circuit is open: tell the buyers of queued orders (each once) that delivery is delayed."""
        for order in await self.orders.claim_delay_notices():
            await self.outcomes.delayed(order)
