"""The order worker: pays queued orders one at a time per wallet, and resolves uncertain ones.

Order of work for one order. Payments from one wallet are serialised by a PostgreSQL advisory lock
(wallet_lock.py), so this holds across several shopbot instances; a claimed order is leased for as long
as one step can take, so a worker that lost its lock mid-step is not joined by another on the same order.
1. queued: create the Fragment order (idempotency key `shop-<id>-<random>`, unique forever on the wallet)
   and check that the answer is our order (product, amount, recipient, key); if not, nothing is signed,
   the order is refunded and the operator told. Sign its payment, COMMIT the signed payment (state
   paying) and submit it only if that write happened. When the library signs the payment again inside
   submit (same seqno), the new signature is committed before it is submitted.
2. paying or verifying (after a crash, an ambiguous answer, or a timeout): ask the service about
   the order. Paid: complete. Failed or expired: refund. Unpaid while the stored payment is valid:
   submit that same payment again. Unpaid, refused outright earlier (no funds, expired): refund with
   that refusal. Unpaid otherwise: back to queued, to be signed afresh.
The cost guard stands between create and sign: what the payment legs add up to in TON, at TON's rate
(costs.py), must leave [pricing] min_margin_percent of the price, else nothing is signed and the hold is
released; so does a missing rate (never sold blind). max_ton_per_order stays the library's last line.
No hold is released, and nothing is signed afresh, while a payment we signed for the order can still
land (its `prepared_until`: the newest valid_until plus a landing margin). Until then the order waits as
verifying, and is verified again after; orders.py refuses such a refund, so no path can forget it.
Before each step that spends (signing, submitting) the payer checks that it still holds the wallet lock;
without it, it stops, and the loop takes the lock again. Temporary trouble (network, service down, open
circuit) only ever postpones.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, Protocol

import anyio
import asyncpg
from anyio.abc import TaskStatus

from shopbot.config.schema import PricingConfig
from shopbot.db.pool import DatabaseBusyError
from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.fulfilment.costs import BELOW_MARGIN, CostCheck, TonRates, check_cost, cost_alert
from shopbot.fulfilment.fragment import FragmentClient, FragmentFailure, is_our_order, payment_cost_ton, step_seconds
from shopbot.fulfilment.orders import Order, Orders, PaymentMayLand
from shopbot.fulfilment.wallet_lock import LockLost, WalletLock, open_wallet_lock
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.notify import Alert

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0
VERIFY_DELAY = 5.0
MAX_DELAY = 300.0
PAID, FAILED = {"success", "completed", "paid"}, {"failed", "expired", "cancelled", "canceled", "refunded"}
ALERT_EVERY = 3600.0  # seconds between two admin alerts for the same reason of the cost guard
MISMATCH = "refund-reason-mismatch"


class OrderNotifier(Protocol):
    async def delivered(self, order: Order) -> None: ...
    async def refunded(self, order: Order, reason: str) -> None: ...
    async def delayed(self, order: Order) -> None: ...


class PayerStopped(ShopbotError):
    """The order moved on while its payment was being signed: what was signed is not submitted."""


def backoff(attempts: int) -> float:
    return min(MAX_DELAY, 5.0 * 2 ** max(attempts - 1, 0))


def txid_of(answer: dict[str, Any]) -> str | None:
    for order in answer.get("orders") or [answer.get("order") or {}]:
        if order.get("txid"):
            return str(order["txid"])
    return answer.get("transaction_hash")


class OrderWorker:
    """A supervised service: the only code that spends the wallet's TON."""

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
        self.notifier = notifier
        self.rates = rates  # TON in the shop currency: for the cost guard and the booked cost
        self.pricing = pricing
        self.alert = alert  # the operator's ear: orders the service answered wrongly, orders refused at a loss
        self._alerted: dict[str, float] = {}  # the cost guard's last alert per reason (monotonic seconds)
        self.margin = client.config.landing_margin_seconds
        self.lease = step_seconds(client.config)
        self._lock: WalletLock | None = None  # held while an order is being worked on

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
        """Take one due order under the wallet lock and move it on; False when none was due."""
        await lock.acquire()
        try:
            row = await queries.orders.claim_due_order(self.pool, self.lease)
            if row is None:
                return False
            order = Order.from_row(row)
            # Shielded: once a payment is under way, a stop waits for its answer (within the grace period).
            with anyio.CancelScope(shield=True):
                self._lock = lock
                try:
                    await self.process(order)
                except (asyncpg.PostgresError, OSError, ValueError, KeyError, TypeError):
                    # A bug or a database blip on one order must not stop every other order behind it.
                    self.metrics.errors.labels("order_worker").inc()
                    log.exception("order %s failed unexpectedly; trying it again later", order.id)
                    await self.orders.retry_later(order, "unexpected error; see the log", backoff(order.attempts))
                finally:
                    self._lock = None
            return True
        finally:
            with anyio.CancelScope(shield=True):
                await lock.release()

    async def _still_ours(self) -> None:
        """Before a step that spends: LockLost unless this worker still holds the wallet lock."""
        if self._lock is not None:
            await self._lock.check()

    async def process(self, order: Order) -> None:
        try:
            if order.state == "queued":
                await self.pay(order)
            else:
                await self.verify(order)
        except FragmentFailure as failure:
            await self._postpone(order, failure)
        except PayerStopped as stopped:
            log.warning("order %s: %s", order.id, stopped)

    async def _postpone(self, order: Order, failure: FragmentFailure) -> None:
        """A temporary failure: count it against the circuit and try again later."""
        await self.breaker.record_failure()
        self.metrics.errors.labels("fragment").inc()
        log.warning("order %s postponed: %s", order.id, failure)
        await self.orders.retry_later(order, str(failure), backoff(order.attempts))

    async def pay(self, order: Order) -> None:
        try:
            created = await self.client.create_order(
                order.product, order.recipient, order.quantity, order.idempotency_key
            )
        except FragmentFailure as failure:
            if failure.kind == "definite":  # nothing can have been paid before a payment was signed
                await self._refused_unsigned(order, failure)
                return
            raise
        await self.breaker.record_success()
        if not is_our_order(
            created,
            product=order.product,
            quantity=order.quantity,
            recipient=order.recipient,
            key=order.idempotency_key,
        ):
            await self._not_ours(order, created)
            return
        fragment_id = str(created["order"]["id"])
        status = str(created["order"].get("status", ""))
        if status != "created":  # ours, known to the service already (a retry after a crash): verify it
            await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, payment_cost_ton(created))
            await self.orders.to_verifying(order, f"service says {status}", 0)
            return
        cost_ton = payment_cost_ton(created)
        if cost_ton is not None:  # without legs there is nothing to sign: the library refuses it itself
            check = await self._check_cost(order, cost_ton)
            if check.refusal is not None:
                # The cost is kept for an order that is not paid too: the newest costs stay known while
                # the shop is not selling.
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, cost_ton)
                await self._refuse_at_cost(order, check)
                return
        await self._still_ours()
        try:
            prepared = await self.client.prepare(created)
        except FragmentFailure as failure:
            if failure.kind == "definite":
                await self._refused_unsigned(order, failure)
                return
            if failure.kind == "ambiguous":
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, None)
                await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
                return
            raise
        if not await self.orders.record_prepared(
            order, fragment_id, prepared, payment_cost_ton(created), margin=self.margin
        ):
            raise PayerStopped("the order changed while its payment was signed; that payment is not submitted")
        await self._submit(order, prepared, created, fragment_id)

    async def _submit(
        self, order: Order, prepared: dict[str, Any], created: dict[str, Any] | None, fragment_id: str
    ) -> None:
        await self._still_ours()
        try:
            answer = await self.client.submit(prepared, created, functools.partial(self._resigned, order))
        except FragmentFailure as failure:
            if failure.prepared is not None:  # the newest signature, to resubmit (and to reason with) later
                await self.orders.record_resigned(order, failure.prepared, margin=self.margin)
            if failure.kind == "definite":
                await self._settle_refused(order, failure, fragment_id)
                return
            await self.breaker.record_failure()
            await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
            return
        await self.breaker.record_success()
        await self._complete(order, txid_of(answer), fragment_id)

    async def _resigned(self, order: Order, prepared: dict[str, Any]) -> None:
        """The library signed the payment again inside submit: committed before it is submitted, or not
        submitted at all."""
        await self._still_ours()
        if not await self.orders.record_resigned(order, prepared, margin=self.margin):
            raise PayerStopped("the order is no longer being paid; its new signature is not submitted")

    async def verify(self, order: Order) -> None:
        if order.fragment_order_id is None:
            # Never reached the service with a payment: start over (once nothing signed can land).
            await self._back_to_queue(order, "no Fragment order yet")
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
        """Refused outright (no funds, expired). An earlier submission of this same payment may have gone
        through, and the service may not know yet: it is refunded only once nothing signed can land."""
        answer = await self.client.get_order(fragment_id)
        status = str((answer.get("order") or {}).get("status", "")).lower()
        if status in PAID:
            await self._complete(order, txid_of(answer), fragment_id)
        elif status in FAILED or status == "created":
            reason = refund_reason(failure)
            await self.orders.remember_refusal(order, reason)
            await self._refund(order, reason)
        else:
            await self.orders.to_verifying(order, str(failure), backoff(order.attempts))

    async def _unpaid(self, order: Order) -> None:
        prepared = order.prepared
        if order.refusal is not None:
            # Refused outright before: never signed anew in a loop, refunded with that refusal once nothing
            # signed can land (until then it waits).
            await self._refund(order, order.refusal)
        elif prepared and time.time() < int(prepared["valid_until"]):
            # Our stored payment may still land: submit that same one (its seqno makes a double payment
            # impossible), never a new signature.
            await self._submit(order, prepared, None, str(order.fragment_order_id))
        else:
            await self._back_to_queue(order, "verified unpaid; its payment expired unsent")

    async def _back_to_queue(self, order: Order, why: str) -> None:
        if not await self.orders.return_to_queue(order, why):
            await self._wait_for_landing(order, f"{why}; a signed payment may still land")

    async def _wait_for_landing(self, order: Order, why: str) -> None:
        due = await self.orders.wait_for_landing(order, why)
        if due is not None:
            log.info("order %s waits until %s: %s", order.id, due.isoformat(timespec="seconds"), why)

    async def _complete(self, order: Order, txid: str | None, fragment_id: str) -> None:
        current = await self.orders.get(order.id)
        cost_ton = current.cost_ton if current else None
        rate = await self.rates.rate() if cost_ton is not None else None
        cost = (cost_ton * rate).quantize(Decimal("0.01")) if cost_ton is not None and rate else Decimal(0)
        done = await self.orders.complete(order, txid=txid, cost_ton=cost_ton, cost=cost)
        if done is not None:
            self.metrics.orders.labels("completed").inc()
            log.info("order %s delivered: %s %s to @%s", order.id, order.quantity, order.product, order.recipient)
            await self._tell(self.notifier.delivered(done))

    async def _refund(self, order: Order, reason: str) -> bool:
        """Release the hold (once) and tell the buyer; `reason` is the key of the text they read. While a
        payment signed for the order can still land, nothing is released: it waits, to be verified again."""
        try:
            done = await self.orders.refund(order, reason)
        except PaymentMayLand:
            await self._wait_for_landing(order, f"refusing to refund ({reason}): a signed payment may still land")
            return False
        if done is not None:
            self.metrics.orders.labels("refunded").inc()
            await self._tell(self.notifier.refunded(done, reason))
        return done is not None

    async def _refused_unsigned(self, order: Order, failure: FragmentFailure) -> None:
        """A definite refusal before anything was signed this time: refund (the operator hears of a payment
        the library would not sign)."""
        refunded = await self._refund(order, refund_reason(failure))
        if failure.code == "UNTRUSTED_PAYMENT":
            await self._alert(
                f"⚠️ Order #{order.id}: the library refused to sign the payment the Fragment service "
                f"asked for ({failure}). "
                + ("The buyer was refunded." if refunded else "It is refunded once no earlier payment of it can land.")
            )

    async def _check_cost(self, order: Order, cost_ton: Decimal) -> CostCheck:
        # A rate in another currency than the order's would judge nothing: an order priced before the shop
        # changed currency is refused as unconfirmed.
        rate = await self.rates.rate() if order.currency.upper() == self.rates.currency else None
        return check_cost(order.price, cost_ton, rate, self.pricing.min_margin_percent)

    async def _refuse_at_cost(self, order: Order, check: CostCheck) -> None:
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
        refunded = await self._refund(order, reason)
        last = self._alerted.get(check.refusal)
        if last is not None and time.monotonic() - last < ALERT_EVERY:
            return
        self._alerted[check.refusal] = time.monotonic()
        await self._alert(cost_alert(order, check, self.pricing, refunded))

    async def _not_ours(self, order: Order, created: dict[str, Any]) -> None:
        """The service answered with an order that is not the one we asked for: nothing is signed."""
        other = created.get("order") or {}
        log.error(
            "order %s: the service answered with Fragment order %s (%s %s for %s, key %s), not ours",
            order.id,
            other.get("id"),
            other.get("amount"),
            other.get("product"),
            other.get("username"),
            other.get("idempotency_key"),
        )
        refunded = await self._refund(order, MISMATCH)
        await self._alert(
            f"⚠️ Order #{order.id}: the Fragment service answered with an order that is not ours (Fragment order "
            f"{other.get('id')}: {other.get('amount')} {other.get('product')} for @{other.get('username')}, key "
            f"{other.get('idempotency_key')}); we asked for {order.quantity} {order.product} for @{order.recipient}, "
            f"key {order.idempotency_key}. Nothing was signed for it. "
            + ("The buyer was refunded." if refunded else "It is refunded once no earlier payment of it can land.")
        )

    async def _alert(self, text: str) -> None:
        if self.alert is not None:
            await self._tell(self.alert(text))

    async def _tell_delayed(self) -> None:
        for order in await self.orders.claim_delay_notices():
            await self._tell(self.notifier.delayed(order))

    @staticmethod
    async def _tell(message: Awaitable[None]) -> None:
        try:
            await message
        except Exception:
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
