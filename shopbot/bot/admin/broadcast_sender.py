"""The broadcast sender: a supervised service that sends each `sending` broadcast to its recipients at
`[broadcast] rate`, resumes after a restart, and keeps the admin's progress message current.

Never twice. Each recipient is claimed in PostgreSQL ('sending') before its message goes out and settled
after Telegram answered; the settling is shielded, so an answer received is recorded even during a stop.
What remains is the window between Telegram accepting a message and that record: a sender that dies there
leaves a claim, and the next sender (it holds the one broadcaster lock, so no other sender is alive) marks
every such claim 'unknown' and never sends it again. A crash may therefore skip the messages that were on
their way (usually one; at most IN_FLIGHT_SECONDS' worth), reported to the admin as "possibly not
delivered"; it never sends one twice. For the same reason a request that got no answer (a timeout, a
dropped connection) is 'unknown', while errors that prove nothing was sent (429, a refused connection, an
open circuit, Telegram's 5xx) are tried again after a pause.

Pace. A send starts at most every 1/rate seconds (after a stall at most one more catches up, never a
burst). Telegram's 429 pauses every send for its retry_after, once, shared; then the same recipient is
tried again. A user who blocked the bot is recorded (users.blocked_at) and skipped by later broadcasts.
"""

from __future__ import annotations

import logging
import math

import aiohttp
import anyio
import asyncpg
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup
from anyio.abc import TaskGroup, TaskStatus

from shopbot.bot.admin.broadcast_screens import Counts, progress_screen, recipient_counts
from shopbot.bot.admin.broadcasts import Broadcast, get_broadcast
from shopbot.bot.telegram_circuit import TelegramCircuitOpen
from shopbot.config.schema import BroadcastConfig
from shopbot.db.queries import queries
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts, Translator
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
IDLE_SECONDS = 1.0
BATCH = 200
MAX_BACKOFF = 60.0
SETTLE_SECONDS = 10.0
# Sends under way at once: enough to keep the rate with Telegram answering within this time, and no more,
# since these are what a crash could leave in doubt.
IN_FLIGHT_SECONDS = 0.25


class Pacer:
    """Hands out send slots at most `rate` a second, and holds every sender during a shared pause."""

    def __init__(self, rate: float, stopping: anyio.Event) -> None:
        self.interval = 1.0 / rate
        self.stopping = stopping
        self.next_at = 0.0
        self.resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` from now (overlapping pauses are one pause, not a sum)."""
        self.resume_at = max(self.resume_at, anyio.current_time() + seconds)

    async def slot(self) -> bool:
        """Wait for the next send's turn; False when the shop is stopping instead."""
        while not self.stopping.is_set():
            now = anyio.current_time()
            at = max(self.next_at, self.resume_at)
            if at <= now:
                # Behind schedule (a stall, a pause): catch up by one interval at most, never in a burst.
                self.next_at = max(self.next_at, now - self.interval) + self.interval
                return True
            with anyio.move_on_after(at - now):
                await self.stopping.wait()
        return False


class BroadcastSender:
    """Sends one broadcast at a time, oldest first, under a lock shared by every shopbot instance."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bot: Bot,
        texts: Texts,
        config: BroadcastConfig,
        lifecycle: Lifecycle,
        metrics: Metrics,
    ) -> None:
        self.pool = pool
        self.bot = bot
        self.texts = texts
        self.config = config
        self.lifecycle = lifecycle
        self.metrics = metrics

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # A broadcast a stopped shop left sending is picked up at once, like a new one.
        while not self.lifecycle.stopping.is_set():
            broadcast_id = await queries.broadcasts.next_sending(self.pool)
            if broadcast_id is None or not await self._send_locked(broadcast_id):
                await self.lifecycle.sleep(IDLE_SECONDS)

    async def _send_locked(self, broadcast_id: int) -> bool:
        """Send under the broadcaster lock; False when another instance holds it."""
        async with self.pool.acquire() as lock_conn:
            if not await queries.broadcasts.broadcaster_lock(lock_conn):
                return False
            try:
                await self.send(broadcast_id)
            finally:
                with anyio.move_on_after(SETTLE_SECONDS, shield=True):
                    await queries.broadcasts.broadcaster_unlock(lock_conn)
        return True

    async def send(self, broadcast_id: int) -> None:
        """Send to everyone still pending until done, paused, cancelled or the shop stops; then report."""
        broadcast = await get_broadcast(self.pool, broadcast_id)
        if broadcast is None or broadcast.state != "sending":
            return
        orphans = await queries.broadcasts.mark_orphaned_claims(self.pool, broadcast_id)
        if orphans:
            log.warning(
                "broadcast %d: %d message(s) may or may not have arrived before the shop stopped; "
                "they are not sent again",
                broadcast_id,
                orphans,
            )
        t = Translator(self.texts, broadcast.admin_language)
        pacer = Pacer(self.config.rate, self.lifecycle.stopping)
        in_flight = anyio.Semaphore(max(1, math.ceil(self.config.rate * IN_FLIGHT_SECONDS)))
        log.info("broadcast %d: sending at %g messages/s", broadcast_id, self.config.rate)
        async with anyio.create_task_group() as progress:
            progress.start_soon(self._keep_progress, broadcast, t, pacer, name=f"broadcast {broadcast_id} progress")
            async with anyio.create_task_group() as sends:
                await self._dispatch(broadcast, pacer, in_flight, sends)
            progress.cancel_scope.cancel()
        with anyio.move_on_after(SETTLE_SECONDS, shield=True):
            await self._finish(broadcast_id, t)

    async def _dispatch(self, broadcast: Broadcast, pacer: Pacer, in_flight: anyio.Semaphore, sends: TaskGroup) -> None:
        markup = broadcast.markup()
        cursor = 0
        while True:
            rows = await queries.broadcasts.pending_recipients(self.pool, broadcast.id, cursor, BATCH)
            if not rows:
                if cursor == 0:
                    return
                cursor = 0  # one more pass from the start: nobody pending may be left behind
                continue
            for row in rows:
                cursor = row["user_id"]
                await in_flight.acquire()
                if not await pacer.slot():
                    in_flight.release()
                    return
                if await queries.broadcasts.claim_recipient(self.pool, broadcast.id, cursor) is None:
                    in_flight.release()
                    current = await get_broadcast(self.pool, broadcast.id)
                    if current is None or current.state != "sending":
                        log.info("broadcast %d is %s: sending stops", broadcast.id, current and current.state)
                        return
                    continue
                sends.start_soon(
                    self._deliver,
                    broadcast,
                    cursor,
                    markup,
                    pacer,
                    in_flight,
                    name=f"broadcast {broadcast.id} to {cursor}",
                )

    async def _deliver(
        self,
        broadcast: Broadcast,
        user_id: int,
        markup: InlineKeyboardMarkup | None,
        pacer: Pacer,
        in_flight: anyio.Semaphore,
    ) -> None:
        """Send to one claimed recipient and record the outcome; retried here while it certainly did not arrive."""
        try:
            try:
                outcome, error = await self._attempt(broadcast, user_id, markup, pacer)
            except Exception as exc:
                self.metrics.errors.labels("broadcast").inc()
                log.exception("broadcast %d: sending to user %d failed unexpectedly", broadcast.id, user_id)
                outcome, error = "unknown", f"{type(exc).__name__}: {exc}"  # it may have been sent
            with anyio.move_on_after(SETTLE_SECONDS, shield=True):
                if outcome == "blocked":
                    await queries.broadcasts.settle_blocked(self.pool, broadcast.id, user_id, error)
                else:
                    await queries.broadcasts.settle_recipient(self.pool, broadcast.id, user_id, outcome, error)
        except (asyncpg.PostgresError, OSError) as exc:
            # The claim stays: the next pass counts this recipient as possibly delivered, never sends again.
            self.metrics.errors.labels("broadcast").inc()
            log.error("broadcast %d: could not record the outcome for user %d: %s", broadcast.id, user_id, exc)
        finally:
            in_flight.release()

    async def _attempt(
        self, broadcast: Broadcast, user_id: int, markup: InlineKeyboardMarkup | None, pacer: Pacer
    ) -> tuple[str, str | None]:
        """The recipient's state after sending: sent, blocked, failed, unknown, or pending (the shop stopped
        before the message could go out)."""
        failures = 0
        while True:
            try:
                await self.bot.send_message(user_id, broadcast.text, reply_markup=markup)
                return "sent", None
            except TelegramRetryAfter as exc:
                log.warning(
                    "broadcast %d: Telegram asks to wait %d s; every send pauses", broadcast.id, exc.retry_after
                )
                pacer.pause(exc.retry_after)
            except TelegramForbiddenError as exc:
                return "blocked", exc.message
            except TelegramBadRequest as exc:
                return "failed", exc.message
            except TelegramNetworkError as exc:
                # Certainly not sent: no connection was made, or the circuit did not let the call out.
                if not isinstance(exc, TelegramCircuitOpen) and not isinstance(
                    exc.__cause__, aiohttp.ClientConnectorError
                ):
                    # The request may have reached Telegram: sending again could deliver it twice.
                    log.warning(
                        "broadcast %d: no answer for user %d (%s); not sent again", broadcast.id, user_id, exc.message
                    )
                    return "unknown", exc.message
                failures += 1
                self._back_off(broadcast, pacer, failures, exc)
            except (TelegramServerError, TelegramAPIError) as exc:  # 5xx, 401, 409: refused, so not sent
                failures += 1
                self._back_off(broadcast, pacer, failures, exc)
            if not await pacer.slot():
                return "pending", None

    def _back_off(self, broadcast: Broadcast, pacer: Pacer, failures: int, exc: TelegramAPIError) -> None:
        delay = min(MAX_BACKOFF, 2.0 ** (failures - 1))
        self.metrics.errors.labels("broadcast").inc()
        log.warning("broadcast %d: Telegram unavailable (%s); every send waits %g s", broadcast.id, exc.message, delay)
        pacer.pause(delay)

    async def _keep_progress(self, broadcast: Broadcast, t: Translator, pacer: Pacer) -> None:
        while True:
            await anyio.sleep(self.config.progress_seconds)
            try:
                counts = await recipient_counts(self.pool, broadcast.id)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("broadcast %d: progress not updated: %s", broadcast.id, exc)
                continue
            await self._show_progress(broadcast, t, counts, pacer)

    async def _show_progress(
        self, broadcast: Broadcast, t: Translator, counts: Counts, pacer: Pacer | None = None
    ) -> None:
        """Edit the admin's progress message; trouble with it never stops the sending."""
        if broadcast.progress_chat_id is None or broadcast.progress_message_id is None:
            return
        text, markup = progress_screen(t, broadcast, counts)
        try:
            await self.bot.edit_message_text(
                text, chat_id=broadcast.progress_chat_id, message_id=broadcast.progress_message_id, reply_markup=markup
            )
        except TelegramRetryAfter as exc:
            if pacer is not None:
                pacer.pause(exc.retry_after)
        except TelegramAPIError as exc:
            if "message is not modified" not in exc.message:
                log.warning("broadcast %d: progress message not updated: %s", broadcast.id, exc.message)

    async def _finish(self, broadcast_id: int, t: Translator) -> None:
        """Store the counts (sending → done when nobody is waiting) and show where the broadcast stands."""
        row = await queries.broadcasts.store_counts(self.pool, broadcast_id)
        final = Broadcast.from_row(row)
        counts = Counts(
            total=final.total,
            sent=final.sent,
            blocked=final.blocked,
            failed=final.failed,
            unknown=final.unknown,
            waiting=int(row["waiting"]),
        )
        if final.state == "sending":  # the shop is stopping (the next start goes on from here), or a claim is left
            log.info("broadcast %d: %d of %d sent so far", broadcast_id, final.sent, final.total)
            return
        log.info(
            "broadcast %d %s: %d sent, %d blocked, %d failed, %d unknown of %d",
            broadcast_id,
            final.state,
            final.sent,
            final.blocked,
            final.failed,
            final.unknown,
            final.total,
        )
        await self._show_progress(final, t, counts)
        if final.state in ("done", "cancelled"):
            text, _ = progress_screen(t, final, counts)
            try:
                await self.bot.send_message(final.progress_chat_id or final.admin_id, text)
            except TelegramAPIError as exc:
                log.warning("broadcast %d: the report did not reach the admin: %s", broadcast_id, exc.message)
