"""The reconciler: asks Heleket about every unfinished invoice, so a lost webhook still credits.

Each pass applies what `payment/info` says (a final answer may come from the cache) through the same
`Settlement` path the settler (settler.py) applies webhooks through: whichever learns of a state first acts on
it, and the other finds it recorded, a duplicate that changes nothing. It finishes invoices whose creation
was interrupted, and expires invoices Heleket never heard of once their lifetime is long over.

Round robin: each pass takes the BATCH invoices asked about longest ago (never asked first) and stamps
each one it asked about, so however many invoices are open, every one is asked within a few passes.
When Heleket says to slow down (429) or its circuit is open, the pass stops where it is: the invoices
not asked keep their place at the front for the next pass.

Several instances: one pass at a time across all of them (a PostgreSQL advisory lock held for the pass);
an instance whose turn comes while another is passing skips it, so Heleket is never asked twice at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import asyncpg
import msgspec
from anyio.abc import TaskStatus

from shopbot.cache import Cache
from shopbot.db.pool import DatabaseBusyError
from shopbot.db.queries import queries
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.payments.heleket import HeleketCircuitOpenError, HeleketClient, HeleketError, HeleketRateLimitedError
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.settle import Outcome, Settlement

log = logging.getLogger(__name__)
BATCH = 100
GIVE_UP_CREATING_AFTER = timedelta(minutes=15)
EXPIRY_GRACE = timedelta(hours=1)


def _not_found(exc: HeleketError) -> bool:
    return not exc.temporary and "not found" in str(exc).lower()


class Reconciler:
    """One pass every `poll_seconds`, for as long as the shop runs."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: HeleketClient,
        settlement: Settlement,
        lifecycle: Lifecycle,
        metrics: Metrics,
        *,
        poll_seconds: float,
        cache: Cache | None = None,
        lookup: PaymentLookup | None = None,
    ) -> None:
        self.pool = pool
        self.client = client
        self.settlement = settlement
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.cache = cache
        self.lookup = lookup if lookup is not None else PaymentLookup(client, cache)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not self.lifecycle.stopping.is_set():
            try:
                await self.reconcile_alone()
            except (OSError, asyncpg.PostgresError, HeleketError, DatabaseBusyError) as exc:
                self.metrics.errors.labels("reconciler").inc()
                log.warning("reconciliation pass failed: %s", exc)
            await self.lifecycle.sleep(self.poll_seconds)

    async def reconcile_alone(self) -> dict[str, int] | None:
        """One pass, unless another instance is in the middle of one (then None)."""
        async with self.pool.acquire() as conn:
            if not await queries.invoices.try_reconciler_lock(conn):
                log.debug("another instance is reconciling; skipping this turn")
                return None
            try:
                return await self.reconcile_once()
            finally:
                await queries.invoices.reconciler_unlock(conn)

    async def reconcile_once(self) -> dict[str, int]:
        """Look at each unfinished invoice once; return how many ended how."""
        counts: dict[str, int] = {}
        for invoice in await queries.invoices.unfinished_invoices(self.pool, BATCH):
            if self.lifecycle.stopping.is_set():
                break
            try:
                outcome = await self._reconcile(invoice)
            except (HeleketRateLimitedError, HeleketCircuitOpenError) as exc:
                # Asking the next invoice would be refused the same way: the rest wait for the next pass.
                log.warning("reconciliation pass paused: %s", exc)
                counts["paused"] = counts.get("paused", 0) + 1
                break
            counts[outcome] = counts.get(outcome, 0) + 1
        if counts:
            log.info("reconciled invoices: %s", counts)
        return counts

    async def _reconcile(self, invoice: asyncpg.Record) -> str:
        now = datetime.now(UTC)
        try:
            info = await self.lookup.info(invoice["order_id"])
        except (HeleketRateLimitedError, HeleketCircuitOpenError):
            raise
        except HeleketError as exc:
            await queries.invoices.stamp_invoice_checked(self.pool, invoice["id"])
            if not _not_found(exc):
                log.warning("payment info for %s failed: %s", invoice["order_id"], exc)
                return "unavailable"
            if invoice["status"] == "creating" and now - invoice["created_at"] > GIVE_UP_CREATING_AFTER:
                await queries.invoices.mark_invoice_failed(self.pool, invoice["id"], "Heleket never created it")
                return "create_failed"
            expires_at = invoice["expires_at"]
            if expires_at is not None and now > expires_at + EXPIRY_GRACE:
                await queries.invoices.expire_invoice(self.pool, invoice["id"])
                return "expired"
            return "not_found"
        await queries.invoices.stamp_invoice_checked(self.pool, invoice["id"])
        if invoice["uuid"] is None:
            expires = datetime.fromtimestamp(info.expired_at, UTC) if info.expired_at else None
            await queries.invoices.record_heleket_invoice(
                self.pool, invoice["id"], info.uuid, info.url, info.status, expires
            )
        payload: dict[str, Any] = msgspec.to_builtins(info)
        outcome = await self.settlement.apply(info, source="reconciler", payload=payload)
        if outcome != Outcome.DUPLICATE:
            self.metrics.payments.labels(outcome.value).inc()
        return outcome.value
