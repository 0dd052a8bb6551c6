"""The payer: moves one claimed order on, paying a queued order and resolving an uncertain one.

1. queued: create the Fragment order (idempotency key `shop-<id>-<random>`, unique forever on the wallet)
   and check that the answer is our order (product, amount, recipient, key); if not, nothing is signed,
   the order is refunded and the operator told. Sign its payment, COMMIT the signed payment (state
   paying) and submit it only if that write happened. When the library signs the payment again inside
   submit (same seqno), the new signature is committed before it is submitted.
2. paying or verifying (after a crash, an ambiguous answer, or a timeout): ask the service about
   the order. Paid: complete. Failed or expired: refund. Unpaid while the stored payment is valid:
   submit that same payment again. Unpaid, refused outright earlier (no funds, expired): refund with
   that refusal. Unpaid otherwise: back to queued, to be signed afresh.
The cost guard (cost_guard.py) stands between create and sign; max_ton_per_order stays the library's last
line. No hold is released, and nothing is signed afresh, while a payment we signed for the order can still
land (its `prepared_until`: the newest valid_until plus a landing margin). Until then the order waits as
verifying, and is verified again after; orders.py refuses such a refund, so no path can forget it.
Before each step that spends (signing, submitting) the payer checks that its worker still holds the wallet
lock; without it, it stops. Temporary trouble (network, service down, open circuit) only ever postpones.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import asyncpg

from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.fulfilment.answers import FAILED, PAID, refund_reason, status_of, txid_of
from shopbot.fulfilment.cost_guard import CostGuard
from shopbot.fulfilment.fragment import FragmentClient, FragmentFailure, is_our_order, payment_cost_ton
from shopbot.fulfilment.orders import Order, Orders
from shopbot.fulfilment.outcomes import Outcomes
from shopbot.fulfilment.wallet_lock import WalletLock
from shopbot.guard.circuit import CircuitBreaker
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
VERIFY_DELAY = 5.0
MAX_DELAY = 300.0
MISMATCH = "refund-reason-mismatch"


class PayerStopped(ShopbotError):
    """The order moved on while its payment was being signed: what was signed is not submitted."""


def backoff(attempts: int) -> float:
    """Seconds until an order that failed `attempts` times is tried again."""
    return min(MAX_DELAY, 5.0 * 2.0 ** max(attempts - 1, 0))


class Payer:
    """The only code that spends the wallet's TON, one order at a time, under its worker's wallet lock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        orders: Orders,
        client: FragmentClient,
        breaker: CircuitBreaker,
        metrics: Metrics,
        outcomes: Outcomes,
        cost_guard: CostGuard,
    ) -> None:
        self.pool = pool
        self.orders = orders
        self.client = client
        self.breaker = breaker
        self.metrics = metrics
        self.outcomes = outcomes
        self.cost_guard = cost_guard
        self.margin = client.config.landing_margin_seconds
        self._lock: WalletLock | None = None  # the worker's, held while an order is being worked on

    async def process(self, order: Order, lock: WalletLock) -> None:
        """Move one claimed order on, under `lock` (checked before each step that spends)."""
        self._lock = lock
        try:
            if order.state == "queued":
                await self.pay(order)
            else:
                await self.verify(order)
        except FragmentFailure as failure:
            await self._postpone(order, failure)
        except PayerStopped as stopped:
            log.warning("order %s: %s", order.id, stopped)
        finally:
            self._lock = None

    async def _still_ours(self) -> None:
        """Before a step that spends: LockLost unless the worker still holds the wallet lock."""
        if self._lock is not None:
            await self._lock.check()

    async def _postpone(self, order: Order, failure: FragmentFailure) -> None:
        """A temporary failure: count it against the circuit and try again later."""
        await self.breaker.record_failure()
        self.metrics.errors.labels("fragment").inc()
        log.warning("order %s postponed: %s", order.id, failure)
        await self.orders.retry_later(order, str(failure), backoff(order.attempts))

    # --- paying a queued order -----------------------------------------------------------------------

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
            check = await self.cost_guard.check(order, cost_ton)
            if check.refusal is not None:
                # The cost is kept for an order that is not paid too: the newest costs stay known while
                # the shop is not selling.
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, cost_ton)
                await self.cost_guard.refuse(order, check)
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
        await self.outcomes.complete(order, txid_of(answer))

    async def _resigned(self, order: Order, prepared: dict[str, Any]) -> None:
        """The library signed the payment again inside submit: committed before it is submitted, or not
        submitted at all."""
        await self._still_ours()
        if not await self.orders.record_resigned(order, prepared, margin=self.margin):
            raise PayerStopped("the order is no longer being paid; its new signature is not submitted")

    async def _refused_unsigned(self, order: Order, failure: FragmentFailure) -> None:
        """A definite refusal before anything was signed this time: refund (the operator hears of a payment
        the library would not sign)."""
        refunded = await self.outcomes.refund(order, refund_reason(failure))
        if failure.code == "UNTRUSTED_PAYMENT":
            await self.outcomes.alert_operator(
                f"⚠️ Order #{order.id}: the library refused to sign the payment the Fragment service "
                f"asked for ({failure}). "
                + ("The buyer was refunded." if refunded else "It is refunded once no earlier payment of it can land.")
            )

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
        refunded = await self.outcomes.refund(order, MISMATCH)
        await self.outcomes.alert_operator(
            f"⚠️ Order #{order.id}: the Fragment service answered with an order that is not ours (Fragment order "
            f"{other.get('id')}: {other.get('amount')} {other.get('product')} for @{other.get('username')}, key "
            f"{other.get('idempotency_key')}); we asked for {order.quantity} {order.product} for @{order.recipient}, "
            f"key {order.idempotency_key}. Nothing was signed for it. "
            + ("The buyer was refunded." if refunded else "It is refunded once no earlier payment of it can land.")
        )

    # --- resolving an uncertain order ----------------------------------------------------------------

    async def verify(self, order: Order) -> None:
        if order.fragment_order_id is None:
            # Never reached the service with a payment: start over (once nothing signed can land).
            await self._back_to_queue(order, "no Fragment order yet")
            return
        answer = await self.client.get_order(order.fragment_order_id)
        await self.breaker.record_success()
        status = status_of(answer)
        if status in PAID:
            await self.outcomes.complete(order, txid_of(answer))
        elif status in FAILED:
            reason = "refund-reason-failed" if status == "failed" else "refund-reason-expired"
            await self.outcomes.refund(order, reason)
        elif status == "created":
            await self._unpaid(order)
        else:  # processing: the payment is on its way
            await self.orders.to_verifying(order, f"service says {status}", backoff(order.attempts))

    async def _settle_refused(self, order: Order, failure: FragmentFailure, fragment_id: str) -> None:
        """Refused outright (no funds, expired). An earlier submission of this same payment may have gone
        through, and the service may not know yet: it is refunded only once nothing signed can land."""
        answer = await self.client.get_order(fragment_id)
        status = status_of(answer)
        if status in PAID:
            await self.outcomes.complete(order, txid_of(answer))
        elif status in FAILED or status == "created":
            reason = refund_reason(failure)
            await self.orders.remember_refusal(order, reason)
            await self.outcomes.refund(order, reason)
        else:
            await self.orders.to_verifying(order, str(failure), backoff(order.attempts))

    async def _unpaid(self, order: Order) -> None:
        prepared = order.prepared
        if order.refusal is not None:
            # Refused outright before: never signed anew in a loop, refunded with that refusal once nothing
            # signed can land (until then it waits).
            await self.outcomes.refund(order, order.refusal)
        elif prepared and time.time() < int(prepared["valid_until"]):
            # Our stored payment may still land: submit that same one (its seqno makes a double payment
            # impossible), never a new signature.
            await self._submit(order, prepared, None, str(order.fragment_order_id))
        else:
            await self._back_to_queue(order, "verified unpaid; its payment expired unsent")

    async def _back_to_queue(self, order: Order, why: str) -> None:
        if not await self.orders.return_to_queue(order, why):
            await self.outcomes.wait_for_landing(order, f"{why}; a signed payment may still land")
