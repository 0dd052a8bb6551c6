"""The settler: applies the Heleket webhooks the endpoint stored in the inbox, after they were answered.

The webhook endpoint verifies a body and stores the event (`heleket_inbox`, one row per uuid, status and
finality), with a NOTIFY in the same statement, and answers 200. This service does the rest:

- It LISTENs on a connection of its own and wakes on each NOTIFY; a sweep every SWEEP_SECONDS (and at the
  time the earliest event retried later falls due) is the safety net for a missed notice, a lost listening
  connection, or events left by a shop that crashed after answering: they are in the inbox, so nothing is lost.
- It claims due events in batches, FOR UPDATE SKIP LOCKED, in a transaction held while the batch is worked:
  several settlers (in one process, or in several instances) share the work and never take the same event,
  and a settler that dies releases its claim with its connection, so the next one takes the events again.
  Each claiming worker has a connection of its own, outside the pool: a claim held while its events wait for
  pool connections could otherwise take the pool from them (and from the webhook endpoint). So a settler
  holds 1 + WORKERS connections besides the pool's.
- Each event goes through confirm.py, which keeps every check: our invoice as we stored it (amount, currency,
  uuid), a state already acted on (no question to Heleket), and Heleket's own payment/info answer, which is
  what `Settlement` applies (credit through the ledger, once, by the invoice's idempotency key). A second
  settle of the same event (after a crash between the credit's commit and the claim's) is a duplicate there.
- What became of each event is written in the claim's transaction: 'settled' (credited, recorded, or a
  duplicate), 'refused' when Heleket denies it (UNCONFIRMED) or it is not about our invoice (MISMATCH; an
  UNKNOWN_INVOICE after UNKNOWN_TRIES), or 'pending' again with a backoff when Heleket could not be asked
  (UNAVAILABLE), until GIVE_UP_AFTER attempts. A refused event does not block the same event heard again.
- The notices (the user's top-up, the inviter's bonus) are sent after the claim's commit, outside any lock.
- The webhook endpoint goes first: it shares the process (and the machine) with this work, and a webhook that
  waits for the settler's CPU is answered late, which is what Heleket sees. So before a claim, an event and a
  notice, the settler waits while webhooks come in as a flood (`answering`, counted by the route: more than
  payments.inbox.FLOOD_PER_WINDOW in its window); during one, a single step goes every YIELD_SECONDS, so the
  work still moves, and it catches up when the flood ends. At Heleket's ordinary pace it never waits.

The reconciler applies its own payment/info answers through the same `Settlement` path, so whichever of the
two learns of a payment first credits it, and the other finds the state acted on.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import anyio
import asyncpg
import msgspec
from anyio.abc import TaskStatus

from shopbot.db.pool import OUTAGE_ERRORS, DatabaseBusyError, DatabaseUnavailableError, connect
from shopbot.db.queries import queries
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.payments.confirm import settle_webhook
from shopbot.payments.heleket_wire import decode_webhook
from shopbot.payments.inbox import Answering
from shopbot.payments.lookup import PaymentLookup
from shopbot.payments.settle import Outcome, Settled, Settlement
from shopbot.payments.signing import WebhookRejected

log = logging.getLogger(__name__)
CHANNEL = "shopbot_heleket_inbox"
BATCH = 50  # events claimed at once by one worker
WORKERS = 2  # claiming loops per settler: while one works its batch, the other claims what arrives
CONCURRENCY = 8  # events settled at once by all workers (each mostly waits on Heleket's payment/info)
SWEEP_SECONDS = 5.0
YIELD_SECONDS = 0.2  # under a flood of webhooks, one step of the settler's every this many seconds
LISTEN_CHECK_SECONDS = 30.0  # how often the listening connection is asked whether it still answers
UNKNOWN_TRIES = 5  # an event for an invoice we do not have is looked for this many times, then refused
GIVE_UP_AFTER = 40  # attempts while Heleket cannot be asked (about a day with the backoff); the reconciler stays
MAX_BACKOFF = 3600.0
SETTLED = {Outcome.CREDITED, Outcome.RECORDED, Outcome.DUPLICATE}
# The database out of reach, restarting or busy: warnings, and the events wait for the next try.
DATABASE_AWAY: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    DatabaseBusyError,
    *OUTAGE_ERRORS,
)
CLAIM_FAILED: tuple[type[Exception], ...] = (DatabaseUnavailableError, *DATABASE_AWAY)
_json = msgspec.json.Encoder()


def backoff(attempts: int) -> float:
    """Seconds before the next try of an event tried `attempts` times (1 s, 2 s, 4 s, ... at most an hour)."""
    return min(MAX_BACKOFF, math.pow(2, min(attempts, 20)))


def next_state(outcome: Outcome, attempts: int) -> tuple[str, float]:
    """Where an event goes after an attempt that came to `outcome` (its `attempts` before this one), and in how
    many seconds a pending one is tried again."""
    if outcome in SETTLED:
        return "settled", 0.0
    if outcome == Outcome.UNKNOWN_INVOICE and attempts + 1 < UNKNOWN_TRIES:
        return "pending", backoff(attempts)  # our row may not be visible yet
    if outcome == Outcome.UNAVAILABLE and attempts + 1 < GIVE_UP_AFTER:
        return "pending", backoff(attempts)
    return "refused", 0.0


def inbox_event(payload: dict[str, Any]) -> tuple[str, str, bool, str, str]:
    """The arguments of `store_inbox_event` for a verified payload (its signature left out)."""
    event = {key: value for key, value in payload.items() if key != "sign"}
    return (
        str(event["uuid"]),
        str(event["status"]),
        bool(event["is_final"]),
        str(event["order_id"]),
        _json.encode(event).decode(),
    )


def _set(event: anyio.Event, *_args: object) -> None:
    event.set()


class Settler:
    """Settles the inbox's events for as long as the shop runs."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        settlement: Settlement,
        lookup: PaymentLookup | None,
        lifecycle: Lifecycle,
        metrics: Metrics,
        *,
        batch: int = BATCH,
        workers: int = WORKERS,
        concurrency: int = CONCURRENCY,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settlement = settlement
        self.lookup = lookup
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.batch = batch
        self.workers = workers
        self.concurrency = concurrency
        self.sweep_seconds = sweep_seconds
        self._wakes = [anyio.Event() for _ in range(workers)]
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._telling = anyio.CapacityLimiter(concurrency)
        self.answering = Answering()  # the webhooks coming in (the route counts them): a flood goes first
        for outcome in Outcome:  # every outcome exported from the start, at zero
            metrics.payments.labels(outcome.value)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Until the shop stops: a worker finishes the batch in hand (within the shutdown grace), then ends."""
        async with anyio.create_task_group() as workers:
            for index in range(self.workers):
                workers.start_soon(self._work, index)
            async with anyio.create_task_group() as listening:
                listening.start_soon(self._listen)
                task_status.started()
                await self.lifecycle.stopping.wait()
                listening.cancel_scope.cancel()
            self.wake()

    def wake(self) -> None:
        """Every worker looks at the inbox now."""
        for event in self._wakes:
            event.set()

    async def _listen(self) -> None:
        """LISTEN on a connection of our own; when it is lost, the sweeps carry on until it is back."""
        while not self.lifecycle.stopping.is_set():
            try:
                conn = await connect(self.dsn, 10.0)
            except DatabaseUnavailableError as exc:  # the sweep still runs once the database is back
                log.warning("settler cannot listen for webhooks (%s); sweeping every %g s", exc, self.sweep_seconds)
                await self.lifecycle.sleep(self.sweep_seconds)
                continue
            lost = anyio.Event()
            try:
                conn.add_termination_listener(partial(_set, lost))
                await conn.add_listener(CHANNEL, lambda *_args: self.wake())
                self.wake()  # anything stored while we were not listening
                while not lost.is_set():
                    with anyio.move_on_after(LISTEN_CHECK_SECONDS):
                        await lost.wait()
                    if not lost.is_set():
                        await queries.health.ping(conn)  # a connection dropped without a word raises here
                log.warning("settler's listening connection was lost; listening again")
            except DATABASE_AWAY as exc:
                log.warning("settler cannot listen for webhooks: %s", exc)
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await conn.close()
            await self.lifecycle.sleep(1.0)

    async def _work(self, index: int) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not self.lifecycle.stopping.is_set():
                self._wakes[index] = anyio.Event()  # a notice from now on wakes this worker after the batch
                try:
                    if conn is None or conn.is_closed():
                        conn = await connect(self.dsn, 10.0)
                    claimed = await self.settle_once(conn)
                except CLAIM_FAILED as exc:
                    self.metrics.errors.labels("settler").inc()
                    log.warning("settling webhooks failed; the events wait for the next sweep: %s", exc)
                    claimed = 0
                await self._rest(index, claimed)
        finally:
            if conn is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await conn.close()

    async def _rest(self, index: int, claimed: int) -> None:
        """Until a notice, the sweep, or the earliest event retried later falls due; not at all after a full
        batch (more may be waiting)."""
        if claimed >= self.batch:
            return
        wait = self.sweep_seconds
        try:
            due = await queries.inbox.next_inbox_due(self.pool)
            if due is not None:
                wait = max(0.05, min(wait, float(due)))
        except DATABASE_AWAY:
            pass  # the sweep's wait, then
        with anyio.move_on_after(wait):
            await self._wakes[index].wait()

    async def settle_once(self, conn: asyncpg.Connection) -> int:
        """Claim one batch of due events on `conn` (not a pool connection), settle them, record what became of
        each, then send their notices. Returns how many events were claimed."""
        told: list[Settled] = []
        await self.answering.quiet(YIELD_SECONDS)
        async with conn.transaction():
            events = await queries.inbox.claim_inbox_events(conn, self.batch)
            if not events:
                return 0
            results: dict[int, Settled] = {}

            async def one(event: asyncpg.Record) -> None:
                async with self._limiter:  # waiting for the endpoint inside: a flood lets through a few at a time
                    await self.answering.quiet(YIELD_SECONDS)
                    results[event["id"]] = await self._settle(event)

            async with anyio.create_task_group() as group:
                for event in events:
                    group.start_soon(one, event)
            ids, states, outcomes, delays = [], [], [], []
            for event in events:
                settled = results[event["id"]]
                state, delay = next_state(settled.outcome, event["attempts"])
                ids.append(event["id"])
                states.append(state)
                outcomes.append(settled.outcome.value)
                delays.append(delay)
                self.metrics.payments.labels(settled.outcome.value).inc()
                if state == "refused" and settled.outcome in (Outcome.UNAVAILABLE, Outcome.UNKNOWN_INVOICE):
                    log.warning(
                        "webhook event %s given up after %d attempts (%s)",
                        event["id"],
                        event["attempts"] + 1,
                        settled.outcome.value,
                    )
                told.append(settled)
            await queries.inbox.finish_inbox_events(conn, ids, states, outcomes, delays)
        # Committed: the notices go out now, with no lock held.
        async with anyio.create_task_group() as group:
            for settled in told:
                if settled.credited is not None or settled.bonus is not None:
                    group.start_soon(self._tell, settled)
        return len(events)

    async def _tell(self, settled: Settled) -> None:
        async with self._telling:  # not the settling's limiter: a notice must not hold up a credit
            await self.answering.quiet(YIELD_SECONDS)
            await self.settlement.tell(settled)

    async def _settle(self, event: asyncpg.Record) -> Settled:
        payload = event["payload"]
        if isinstance(payload, str):
            payload = msgspec.json.decode(payload)
        try:
            webhook = decode_webhook(payload)
        except WebhookRejected as rejected:  # stored only once verified and decoded; a changed schema, say
            log.error("inbox event %s cannot be read: %s", event["id"], rejected)
            return Settled(Outcome.MISMATCH)
        try:
            return await settle_webhook(webhook, self.settlement, self.lookup)
        except DATABASE_AWAY as exc:
            log.warning("webhook %s for %s could not be settled now: %s", webhook.status, webhook.order_id, exc)
            return Settled(Outcome.UNAVAILABLE)
        except Exception:  # one bad event must not stop the others: it waits, with its backoff
            log.exception("webhook %s for %s could not be settled", webhook.status, webhook.order_id)
            return Settled(Outcome.UNAVAILABLE)
