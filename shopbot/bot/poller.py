"""A small, structured long-poller: `getUpdates` + `Dispatcher.feed_update`.

aiogram's own `start_polling` spawns handler tasks outside any task group and cannot be stopped
cleanly from outside; this poller keeps every handler a child of its own task group, so a stop
waits for in-flight handlers (money among them) and the grace deadline is the only cancellation.
Updates are confirmed to Telegram only by the next `getUpdates` offset, so an update fetched but
not handled before a crash is delivered again. At most `max_concurrent` updates are handled at once:
each poll asks for no more than the free places (getUpdates' `limit`), and while none is free the
poller does not poll, so the rest wait at Telegram, unconfirmed.
"""

from __future__ import annotations

import logging

import anyio
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates
from aiogram.types import Update
from anyio.abc import TaskStatus

from shopbot.bot.telegram_circuit import TelegramCircuitOpen
from shopbot.bot.updates import UpdateHandler
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts

log = logging.getLogger(__name__)
# Telegram being away for a while is not a crash of ours: wait and poll again.
TRANSIENT_ERRORS = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter, TimeoutError)
MAX_BACKOFF = 30.0


class Poller:
    """Fetches updates while the shop runs and feeds each to the dispatcher in its own task."""

    def __init__(
        self, updates: UpdateHandler, lifecycle: Lifecycle, texts: Texts, *, poll_timeout: int, max_concurrent: int
    ) -> None:
        self.updates = updates
        self.bot = updates.bot
        self.dispatcher = updates.dispatcher
        self.metrics = updates.metrics
        self.lifecycle = lifecycle
        self.texts = texts
        self.poll_timeout = poll_timeout
        self.offset: int | None = None
        self._poll_scope = anyio.CancelScope()
        self.places = anyio.Semaphore(max_concurrent)
        self._update_types: list[str] | None = None  # what the routers handle: fixed once the shop runs

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Poll until the shop stops, then let in-flight handlers finish."""
        # getUpdates is refused while a webhook is set. Pending updates are kept: they may be payments.
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.updates.start(self.texts)
        try:
            async with anyio.create_task_group() as handlers:
                handlers.start_soon(self._abandon_poll_on_stop, name="poller:stop-watch")
                task_status.started()
                while not self.lifecycle.stopping.is_set():
                    await self._wait_for_a_place()
                    for update in await self.fetch(limit=min(100, self.places.value)):
                        self.offset = update.update_id + 1
                        # Never waits: the poll asked for no more updates than there are free places.
                        await self.places.acquire()
                        handlers.start_soon(self._handle, update, name=f"update:{update.update_id}")
                log.info("polling stopped; letting in-flight updates finish")
        finally:
            with anyio.move_on_after(5, shield=True):
                await self.updates.stop()

    async def _wait_for_a_place(self) -> None:
        """Return once an update could start; handlers finishing free places, so this cannot wait for ever."""
        await self.places.acquire()
        self.places.release()

    async def _handle(self, update: Update) -> None:
        try:
            await self.updates.handle(update)
        finally:
            self.places.release()

    async def _abandon_poll_on_stop(self) -> None:
        await self.lifecycle.stopping.wait()
        self._poll_scope.cancel()

    async def fetch(self, limit: int = 100) -> list[Update]:
        """One long poll of at most `limit` updates; empty when the shop starts stopping. Telegram outages are
        waited out."""
        if self._update_types is None:
            self._update_types = self.dispatcher.resolve_used_update_types()
        method = GetUpdates(
            offset=self.offset, limit=limit, timeout=self.poll_timeout, allowed_updates=self._update_types
        )
        delay = 1.0
        while not self.lifecycle.stopping.is_set():
            try:
                with self._poll_scope:
                    return await self.bot(method, request_timeout=self.poll_timeout + 10)
                return []  # the stop watcher abandoned the poll; nothing fetched is confirmed
            except TRANSIENT_ERRORS as exc:
                if isinstance(exc, TelegramRetryAfter):
                    wait = float(exc.retry_after)
                elif isinstance(exc, TelegramCircuitOpen):  # no call was made: poll again when it half-opens
                    wait, delay = max(0.05, exc.retry_after), 1.0
                else:
                    wait = delay
                delay = min(delay * 2, MAX_BACKOFF)
                self.metrics.errors.labels("telegram_poll").inc()
                log.warning("getUpdates failed (%s); polling again in %.0f s", type(exc).__name__, wait)
                await self.lifecycle.sleep(wait)
            finally:
                self._poll_scope = anyio.CancelScope()
        return []
