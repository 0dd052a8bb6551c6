"""The order worker: pays queued orders one at a time per wallet, and resolves uncertain ones.

Order of work for one order (payments from one wallet are serialised by a PostgreSQL advisory lock,
so this holds across several shopbot instances, not only inside this process):
1. queued: create the Fragment order (idempotency key `shop:<id>`), sign its payment, COMMIT the
   signed payment (state paying), then submit it.
2. paying or verifying (after a crash, an ambiguous answer, or a timeout): ask the service about
   the order. Paid: complete. Failed or expired: refund — now verified. Unpaid while the stored
   payment can still land: submit the same stored payment again. Unpaid and the stored payment has
   expired: back to queued, to be signed afresh — the only time a second signature is made, and
   only once the first can no longer land.
Temporary trouble (network, service down, open circuit) only ever postpones; a refund follows only
a definite failure before payment or a verified one after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

import anyio
import asyncpg
from anyio.abc import TaskStatus

from shopbot.db.queries import queries
from shopbot.fulfilment.fragment import FragmentClient, FragmentFailure, payment_cost_ton
from shopbot.fulfilment.orders import Order, Orders
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0
VERIFY_DELAY = 5.0
MAX_DELAY = 300.0
# A stored payment is treated as able to land until this long after its valid_until.
EXPIRY_MARGIN = 60.0
PAID, FAILED = {"success", "completed", "paid"}, {"failed", "expired", "cancelled", "canceled", "refunded"}
CostRate = Callable[[], Awaitable[Decimal | None]]


class OrderNotifier(Protocol):
    async def delivered(self, order: Order) -> None: ...
    async def refunded(self, order: Order, reason: str) -> None: ...
    async def delayed(self, order: Order) -> None: ...


def backoff(attempts: int) -> float:
    return min(MAX_DELAY, 5.0 * 2 ** max(attempts - 1, 0))


def txid_of(answer: dict[str, Any]) -> str | None:
    for order in answer.get("orders") or [answer.get("order") or {}]:
        if order.get("txid"):
            return str(order["txid"])
    return answer.get("transaction_hash")


class OrderWorker:
    """A supervised service: the only code that spends the wallet's TON."""

    def __init__(self, pool: asyncpg.Pool, orders: Orders, client: FragmentClient, breaker: CircuitBreaker,
                 lifecycle: Lifecycle, metrics: Metrics, notifier: OrderNotifier, *, ton_rate: CostRate) -> None:
        self.pool = pool
        self.orders = orders
        self.client = client
        self.breaker = breaker
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.notifier = notifier
        self.ton_rate = ton_rate

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # Orders a dead worker left half-way are resumed before anything new is paid.
        await queries.orders.make_unfinished_due(self.pool)
        task_status.started()
        async with self.pool.acquire() as lock_conn:
            while not self.lifecycle.stopping.is_set():
                circuit = await self.breaker.status()
                if circuit.state == OPEN:
                    await self._tell_delayed()
                    await self._idle(min(circuit.retry_after, 5.0))
                    continue
                worked = await self.work_once(lock_conn)
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

    async def work_once(self, lock_conn: asyncpg.Connection) -> bool:
        """Take one due order under the wallet lock and move it on; False when none was due."""
        wallet = self.client.address
        await queries.orders.wallet_lock(lock_conn, wallet)
        try:
            row = await queries.orders.claim_due_order(self.pool)
            if row is None:
                return False
            order = Order.from_row(row)
            # Shielded: once a payment is under way, a stop waits for its answer (within the grace period).
            with anyio.CancelScope(shield=True):
                try:
                    await self.process(order)
                except (asyncpg.PostgresError, OSError, ValueError, KeyError, TypeError):
                    # A bug or a database blip on one order must not stop every other order behind it.
                    self.metrics.errors.labels("order_worker").inc()
                    log.exception("order %s failed unexpectedly; trying it again later", order.id)
                    await self.orders.retry_later(order, "unexpected error; see the log", backoff(order.attempts))
            return True
        finally:
            with anyio.CancelScope(shield=True):
                await queries.orders.wallet_unlock(lock_conn, wallet)

    async def process(self, order: Order) -> None:
        try:
            if order.state == "queued":
                await self.pay(order)
            else:
                await self.verify(order)
        except FragmentFailure as failure:
            await self._postpone(order, failure)

    async def _postpone(self, order: Order, failure: FragmentFailure) -> None:
        """A temporary failure: count it against the circuit and try again later."""
        await self.breaker.record_failure()
        self.metrics.errors.labels("fragment").inc()
        log.warning("order %s postponed: %s", order.id, failure)
        await self.orders.retry_later(order, str(failure), backoff(order.attempts))

    async def pay(self, order: Order) -> None:
        try:
            created = await self.client.create_order(order.product, order.recipient, order.quantity,
                                                     order.idempotency_key)
        except FragmentFailure as failure:
            if failure.kind == "definite":  # nothing can have been paid before a payment was signed
                await self._refund(order, refund_reason(failure))
                return
            raise
        await self.breaker.record_success()
        fragment_id = str(created["order"]["id"])
        status = str(created["order"].get("status", ""))
        if status != "created":  # known to the service already (a retry after a crash): verify it
            await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, payment_cost_ton(created))
            await self.orders.to_verifying(order, f"service says {status}", 0)
            return
        try:
            prepared = await self.client.prepare(created)
        except FragmentFailure as failure:
            if failure.kind == "definite":
                await self._refund(order, refund_reason(failure))
                return
            if failure.kind == "ambiguous":
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, None)
                await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
                return
            raise
        await self.orders.record_prepared(order, fragment_id, prepared, payment_cost_ton(created))
        await self._submit(order, prepared, created, fragment_id)

    async def _submit(self, order: Order, prepared: dict[str, Any], created: dict[str, Any] | None,
                      fragment_id: str) -> None:
        try:
            answer = await self.client.submit(prepared, created)
        except FragmentFailure as failure:
            if failure.kind == "definite":
                # Refused outright (no funds, expired). An earlier submission of this same payment could
                # still have gone through, so the service's view of the order decides.
                await self._settle_refused(order, failure, fragment_id)
                return
            await self.breaker.record_failure()
            await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
            return
        await self.breaker.record_success()
        await self._complete(order, txid_of(answer), fragment_id)

    async def verify(self, order: Order) -> None:
        if order.fragment_order_id is None:
            # Never reached the service with a payment: safe to start over.
            await self.orders.return_to_queue(order, "no Fragment order yet")
            return
        answer = await self.client.get_order(order.fragment_order_id)
        await self.breaker.record_success()
        status = str((answer.get("order") or {}).get("status", "")).lower()
        if status in PAID:
            await self._complete(order, txid_of(answer), order.fragment_order_id)
        elif status in FAILED:
            reason = "refund-reason-failed" if status == "failed" else "refund-reason-expired"
            await self._refund(order, reason)
        elif status == "created":
            await self._unpaid(order)
        else:  # processing: the payment is on its way
            await self.orders.to_verifying(order, f"service says {status}", backoff(order.attempts))

    async def _settle_refused(self, order: Order, failure: FragmentFailure, fragment_id: str) -> None:
        answer = await self.client.get_order(fragment_id)
        status = str((answer.get("order") or {}).get("status", "")).lower()
        if status in PAID:
            await self._complete(order, txid_of(answer), fragment_id)
        elif status in FAILED or status == "created":
            await self._refund(order, refund_reason(failure))
        else:
            await self.orders.to_verifying(order, str(failure), backoff(order.attempts))

    async def _unpaid(self, order: Order) -> None:
        prepared = order.prepared
        if prepared and time.time() < int(prepared["valid_until"]) + EXPIRY_MARGIN:
            # Our stored payment may still land: submit that same one (its seqno makes a double payment
            # impossible), never a new signature.
            await self._submit(order, prepared, None, str(order.fragment_order_id))
        else:
            await self.orders.return_to_queue(order, "verified unpaid; its payment expired unsent")

    async def _complete(self, order: Order, txid: str | None, fragment_id: str) -> None:
        current = await self.orders.get(order.id)
        cost_ton = current.cost_ton if current else None
        rate = await self.ton_rate() if cost_ton is not None else None
        cost = (cost_ton * rate).quantize(Decimal("0.01")) if cost_ton is not None and rate else Decimal(0)
        done = await self.orders.complete(order, txid=txid, cost_ton=cost_ton, cost=cost)
        if done is not None:
            self.metrics.orders.labels("completed").inc()
            log.info("order %s delivered: %s %s to @%s", order.id, order.quantity, order.product, order.recipient)
            await self._tell(self.notifier.delivered(done))

    async def _refund(self, order: Order, reason: str) -> None:
        """Release the hold (once) and tell the buyer; `reason` is the key of the text they read."""
        done = await self.orders.refund(order, reason)
        if done is not None:
            self.metrics.orders.labels("refunded").inc()
            await self._tell(self.notifier.refunded(done, reason))

    async def _tell_delayed(self) -> None:
        for order in await self.orders.claim_delay_notices():
            await self._tell(self.notifier.delayed(order))

    @staticmethod
    async def _tell(message: Awaitable[None]) -> None:
        try:
            await message
        except Exception:  # noqa: BLE001 - a failed notice must not stop the money's work
            log.warning("could not send an order notice", exc_info=True)


def refund_reason(failure: FragmentFailure) -> str:
    """Why the order was refunded, as the key of a text the user reads in their language."""
    return {
        "INSUFFICIENT_BALANCE": "refund-reason-no-funds",
        "ORDER_EXPIRED": "refund-reason-expired",
        "UNTRUSTED_PAYMENT": "refund-reason-untrusted",
        "USER_NOT_FOUND": "refund-reason-no-recipient",
        "RECIPIENT_NOT_FOUND": "refund-reason-no-recipient",
        "INVALID_USERNAME": "refund-reason-no-recipient",
        "PREMIUM_ACTIVE": "refund-reason-has-premium",
    }.get(failure.code or "", "refund-reason-refused")
