"""The payer: pays claimed queued orders in batches, one signed payment per batch, and resolves an uncertain
order on its own.

A wallet sends one external message at a time (its seqno) and each takes seconds to land, so the worker
claims up to as many queued orders as one payment carries (worker.py) and the payer pays them together:
1. Each order on its own: create the Fragment order (idempotency key `shop-<id>-<random>`, unique forever on
   the wallet) and check that the answer is our order (product, amount, recipient, key); then the cost guard
   (cost_guard.py); then the library's own checks before signing (check_order). An order that fails any of
   them is settled on its own (refunded and the operator told; or verified, when the service knows it
   already) and left out of the batch: nothing is signed for it. Temporary trouble postpones that order and
   the ones not tried yet; the orders already created are paid.
2. ONE signed payment for every order left (the library's prepare: one external whose messages are the legs
   of every order; max_ton_per_order bounds each order's own legs). Not while a payment stored on an unsettled
   order is for the wallet's current seqno and can still land (in flight, or stored and not yet resubmitted
   after a crash): the batch waits a moment instead of competing with it for that seqno.
3. ONE transaction storing that payment on every order of the batch (state paying). If any order is no
   longer ours to pay, nothing is stored and nothing submitted: the signature never left this process, so it
   can never land, and the other orders are tried again at once.
4. ONE submit, only if that write happened. Paid: each order completes on its own, from its own entry in the
   answer (one the answer does not show paid is verified). Ambiguous (a timeout, a lost answer): every order
   of the batch is verified. Refused outright (no funds, an order expired): each order is settled on its own.
   When the library signs the payment again inside submit (same seqno), the new signature is committed on
   every order of the batch before it is submitted.
An order in paying or verifying (after a crash, an ambiguous answer, or a timeout) is resolved on its own:
ask the service about it. Paid: complete. Failed or expired: refund. Unpaid while the stored payment is valid:
submit that same payment again (it still pays its whole batch, and one external lands at most once). Unpaid,
refused outright earlier (no funds, expired): refund with that refusal. Unpaid otherwise: back to queued, to
be signed afresh.
The cost guard stands between create and sign; max_ton_per_order stays the library's last line. No hold is
released, and nothing is signed afresh, while a payment we signed for the order can still land (its
`prepared_until`: the newest valid_until plus a landing margin, the same for every order of a batch). Until
then the order waits as verifying, and is verified again after; orders.py refuses such a refund, so no path
can forget it. Before each step that spends (signing, submitting) the payer checks that its worker still
holds the wallet lock; without it, it stops. Temporary trouble (network, service down, open circuit) only
ever postpones.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.fulfilment.answers import FAILED, PAID, paid_in, refund_reason, status_of, txid_of
from shopbot.fulfilment.cost_guard import CostGuard
from shopbot.fulfilment.fragment import FragmentClient, FragmentFailure, is_our_order, payment_cost_ton
from shopbot.fulfilment.orders import Order, Orders
from shopbot.fulfilment.outcomes import Outcomes
from shopbot.fulfilment.wallet_lock import WalletLock
from shopbot.guard.circuit import CircuitBreaker
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
VERIFY_DELAY = 5.0
SEQNO_WAIT = 2.0  # seconds new orders wait while an earlier payment for the wallet's seqno may still land
MAX_DELAY = 300.0
MISMATCH = "refund-reason-mismatch"


class PayerStopped(ShopbotError):
    """The orders moved on while their payment was being signed: what was signed is not submitted."""


def backoff(attempts: int) -> float:
    """Seconds until an order that failed `attempts` times is tried again."""
    return min(MAX_DELAY, 5.0 * 2.0 ** max(attempts - 1, 0))


@dataclass(frozen=True, slots=True)
class _Ready:
    """An order of a batch whose Fragment order passed every check: its payment is signed with the others'."""

    order: Order
    created: dict[str, Any]
    fragment_id: str
    cost_ton: Decimal | None


class Payer:
    """The only code that spends the wallet's TON, one payment at a time, under its worker's wallet lock."""

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
        self._lock: WalletLock | None = None  # the worker's, held while orders are being worked on

    async def process(self, order: Order, lock: WalletLock) -> None:
        """Move one claimed order on, under `lock` (checked before each step that spends)."""
        if order.state == "queued":
            await self.pay([order], lock)
            return
        self._lock = lock
        try:
            await self.verify(order)
        except FragmentFailure as failure:
            await self._postpone([order], failure)
        except PayerStopped as stopped:
            log.warning("order %s: %s", order.id, stopped)
        finally:
            self._lock = None

    async def pay(
        self, orders: Sequence[Order], lock: WalletLock, *, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        """Pay claimed queued orders with one payment, under `lock`. Once `stopping()` says so (the shop is
        stopping, or the batch spent its time), orders not yet created are left for the next batch: the ones
        created are paid."""
        self._lock = lock
        try:
            ready = await self._prepare_orders(list(orders), stopping)
            if ready:
                await self._pay_together(ready)
        except PayerStopped as stopped:
            log.warning("orders %s: %s", ", ".join(str(order.id) for order in orders), stopped)
        finally:
            self._lock = None

    async def _still_ours(self) -> None:
        """Before a step that spends: LockLost unless the worker still holds the wallet lock."""
        if self._lock is not None:
            await self._lock.check()

    async def _postpone(self, orders: Sequence[Order], failure: FragmentFailure) -> None:
        """A temporary failure: count it against the circuit (once) and try these orders again later."""
        await self.breaker.record_failure()
        self.metrics.errors.labels("fragment").inc()
        log.warning("orders %s postponed: %s", ", ".join(str(order.id) for order in orders), failure)
        for order in orders:
            await self.orders.retry_later(order, str(failure), backoff(order.attempts))

    async def _each_refused(
        self, orders: Sequence[Order], fragment_ids: Sequence[str], refusal: FragmentFailure, *, shared: bool
    ) -> None:
        """Settle each order of a refused payment on its own; temporary trouble with one postpones that one."""
        for order, fragment_id in zip(orders, fragment_ids, strict=True):
            try:
                await self._settle_refused(order, refusal, fragment_id, shared)
            except FragmentFailure as failure:
                await self._postpone([order], failure)

    # --- paying queued orders, in one payment ----------------------------------------------------------------

    async def _prepare_orders(self, orders: list[Order], stopping: Callable[[], bool]) -> list[_Ready]:
        """Create and check each order's Fragment order; those that pass are paid together."""
        ready: list[_Ready] = []
        for index, order in enumerate(orders):
            if index and stopping():
                for later in orders[index:]:
                    await self.orders.retry_later(later, "left for the next batch", 0)
                break
            try:
                checked = await self._checked(order)
            except FragmentFailure as failure:
                # The service is in trouble: this order later, and so the ones not tried yet.
                await self._postpone([order], failure)
                for later in orders[index + 1 :]:
                    await self.orders.retry_later(later, f"not tried yet: {failure}", backoff(later.attempts))
                break
            if checked is not None:
                ready.append(checked)
        return ready

    async def _checked(self, order: Order) -> _Ready | None:
        """The order's Fragment order, checked and ready to be signed for; None when the order was settled
        on its own instead (refused, not ours, too dear, or known to the service already)."""
        try:
            created = await self.client.create_order(
                order.product, order.recipient, order.quantity, order.idempotency_key
            )
        except FragmentFailure as failure:
            if failure.kind == "definite":  # nothing can have been paid before a payment was signed
                await self._refused_unsigned(order, failure)
                return None
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
            return None
        fragment_id = str(created["order"]["id"])
        status = str(created["order"].get("status", ""))
        cost_ton = payment_cost_ton(created)
        if status != "created":  # ours, known to the service already (a retry after a crash): verify it
            await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, cost_ton)
            await self.orders.to_verifying(order, f"service says {status}", 0)
            return None
        if cost_ton is not None:  # without legs there is nothing to sign: the library refuses it itself
            check = await self.cost_guard.check(order, cost_ton)
            if check.refusal is not None:
                # The cost is kept for an order that is not paid too: the newest costs stay known while the
                # shop is not selling.
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, cost_ton)
                await self.cost_guard.refuse(order, check)
                return None
        try:
            await self.client.check_order(created)  # what prepare would refuse, found for this order alone
        except FragmentFailure as failure:
            if failure.kind == "definite":
                await self._refused_unsigned(order, failure)
                return None
            if failure.kind == "ambiguous":  # nothing to pay: paid or being paid already
                await queries.orders.set_fragment_order(self.pool, order.id, fragment_id, None)
                await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
                return None
            raise
        return _Ready(order, created, fragment_id, cost_ton)

    async def _pay_together(self, batch: list[_Ready]) -> None:
        """Sign one payment for the batch, commit it on every order, then submit it."""
        orders = [item.order for item in batch]
        try:
            taken = await self._seqno_taken()
        except FragmentFailure as failure:
            await self._postpone(orders, failure)
            return
        if taken:
            for order in orders:
                await self.orders.retry_later(order, "an earlier payment for this seqno may still land", SEQNO_WAIT)
            return
        await self._still_ours()
        try:
            prepared = await self.client.prepare([item.created for item in batch])
        except FragmentFailure as failure:
            # Each order passed the same checks on its own (check_order): a refusal here is the batch's.
            if failure.kind == "definite":
                for order in orders:
                    await self._refused_unsigned(order, failure)
            elif failure.kind == "ambiguous":
                for item in batch:
                    await queries.orders.set_fragment_order(self.pool, item.order.id, item.fragment_id, None)
                    await self.orders.to_verifying(item.order, str(failure), VERIFY_DELAY)
            else:
                await self._postpone(orders, failure)
            return
        fragment_ids = [item.fragment_id for item in batch]
        costs = [item.cost_ton for item in batch]
        recorded = await self.orders.record_prepared(orders, fragment_ids, prepared, costs, margin=self.margin)
        if not recorded:
            # Nothing was written and nothing is submitted; the orders still ours start again at once (the
            # signature never left this process). retry_later leaves a settled order as it is.
            for order in orders:
                await self.orders.retry_later(order, "an order paid with it changed while it was signed", 0)
            raise PayerStopped("an order of the batch changed while its payment was signed; it is not submitted")
        if len(batch) > 1:
            log.info(
                "paying %d orders with one payment (seqno %s): %s",
                len(batch),
                prepared.get("seqno"),
                ", ".join(str(order.id) for order in orders),
            )
        await self._submit(orders, fragment_ids, prepared, [item.created for item in batch])

    async def _seqno_taken(self) -> bool:
        """Whether a payment stored on an unsettled order is for the wallet's current seqno and can still land
        (on its way, or stored and not submitted after a crash): a new payment signed now would compete with it
        for that seqno, and one of them would be refused. The wallet is asked only when there is such a payment."""
        stored = {row["seqno"] for row in await queries.orders.stored_payment_seqnos(self.pool)}
        if not stored:
            return False
        return int((await self.client.wallet_info())["seqno"]) in stored

    async def _submit(
        self,
        orders: list[Order],
        fragment_ids: list[str],
        prepared: dict[str, Any],
        created: list[dict[str, Any]] | None,
    ) -> None:
        """Submit a stored payment and settle each of `orders` (those it pays that this step works on) on its
        own from the answer. `created`: the batch as signed, so the library may sign it again (same seqno)."""
        await self._still_ours()
        try:
            answer = await self.client.submit(prepared, created, functools.partial(self._resigned, orders))
        except FragmentFailure as failure:
            if failure.prepared is not None:  # the newest signature, to resubmit (and to reason with) later
                await self.orders.record_resigned(orders, failure.prepared, margin=self.margin)
            if failure.kind == "definite":
                await self._each_refused(orders, fragment_ids, failure, shared=len(prepared.get("orders") or ()) > 1)
                return
            await self.breaker.record_failure()
            for order in orders:
                await self.orders.to_verifying(order, str(failure), VERIFY_DELAY)
            return
        await self.breaker.record_success()
        for order, fragment_id in zip(orders, fragment_ids, strict=True):
            paid, txid = paid_in(answer, fragment_id)
            if paid:
                await self.outcomes.complete(order, txid)
            else:  # the answer does not show this one paid: ask about it
                await self.orders.to_verifying(order, "the service's answer does not show it paid", VERIFY_DELAY)

    async def _resigned(self, orders: list[Order], prepared: dict[str, Any]) -> None:
        """The library signed the payment again inside submit: committed on every order it pays before it is
        submitted, or not submitted at all."""
        await self._still_ours()
        if not await self.orders.record_resigned(orders, prepared, margin=self.margin):
            raise PayerStopped("an order is no longer being paid; the payment's new signature is not submitted")

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

    async def _settle_refused(self, order: Order, failure: FragmentFailure, fragment_id: str, shared: bool) -> None:
        """Refused outright (no funds, expired). An earlier submission of this same payment may have gone
        through, and the service may not know yet: it is refunded only once nothing signed can land. With
        `shared` (the payment paid other orders too), an order whose own invoice is still valid is not
        refunded for another order's expiry: it is paid afresh, without that one, once nothing signed can land."""
        answer = await self.client.get_order(fragment_id)
        status = status_of(answer)
        if status in PAID:
            await self.outcomes.complete(order, txid_of(answer))
        elif shared and failure.code == "ORDER_EXPIRED" and status == "created" and _payable(answer):
            await self._back_to_queue(order, f"{failure}: another order paid with it expired")
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
            # impossible), never a new signature. It pays its whole batch; the other orders of it are each
            # verified on their own.
            await self._submit([order], [str(order.fragment_order_id)], prepared, None)
        else:
            await self._back_to_queue(order, "verified unpaid; its payment expired unsent")

    async def _back_to_queue(self, order: Order, why: str) -> None:
        if not await self.orders.return_to_queue(order, why):
            await self.outcomes.wait_for_landing(order, f"{why}; a signed payment may still land")


def _payable(answer: dict[str, Any]) -> bool:
    """Whether a get_order answer shows the order's invoice still open (its payment valid for a while)."""
    payment = answer.get("payment") or {}
    try:
        return float(payment.get("valid_until") or 0) > time.time() + 30
    except (TypeError, ValueError):
        return False
