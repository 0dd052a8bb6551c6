"""Storing verified webhook events in the inbox, by group commit, and the endpoint's right of way.

`InboxWriter.store` returns only once the event is committed (durable before the 200), but concurrent requests
share the commit: while one statement is writing, the events that arrive wait, and the next statement stores all
of them (one multi-row INSERT, one transaction, one NOTIFY for the settlers). At most `writers` statements run
at once, each taken by one of the waiting requests, so nothing but the requests themselves does the writing.
Under load that is one commit (and one WAL flush) for many webhooks instead of one each; alone, a webhook is
written at once, as before. A failed statement fails every request of its batch with the same error, which the
web app answers as before (503 when the database is out of reach or busy): none of them was answered 200.

`Answering` counts the webhooks coming in, so the settler can let a flood of them go first (settler.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import asyncpg

from shopbot.db.queries import queries

WRITERS = 2  # statements in flight at once: one commits while the next batch gathers
MAX_BATCH = 500  # events in one statement
WINDOW_SECONDS = 0.1
FLOOD_PER_WINDOW = 30  # 300 webhooks/s


@dataclass(slots=True, eq=False)
class _Entry:
    key: tuple[str, str, bool]
    args: tuple[str, str, bool, str, str]
    wake: anyio.Event = field(default_factory=anyio.Event)  # stored (or failed), or called to write
    new: bool | None = None  # once committed: stored by this request, or found already stored
    error: Exception | None = None
    called: bool = False  # counted as a writer: writes batches until its own is stored, then hands on


class InboxWriter:
    """Stores verified events in `heleket_inbox`, several requests' events per statement."""

    def __init__(self, pool: asyncpg.Pool, *, writers: int = WRITERS, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.writers = writers
        self.max_batch = max_batch
        self.statements = 0  # how many statements stored how many events: what the grouping saves
        self.events = 0
        self._waiting: list[_Entry] = []
        self._writing = 0

    async def store(self, event: tuple[str, str, bool, str, str]) -> bool:
        """Store one event (`settler.inbox_event`'s arguments) and return once it is committed: True when this
        call stored it, False when it was stored already (a repeat, in an earlier batch or in this one)."""
        entry = _Entry((event[0], event[1], event[2]), event)
        self._waiting.append(entry)
        if self._writing < self.writers:
            self._writing += 1
            entry.called = True
        else:
            try:
                await entry.wake.wait()
            except BaseException:  # cancelled (the caller went away): a call to write passes to someone else
                self._waiting = [other for other in self._waiting if other is not entry]
                if entry.called:
                    self._writing -= 1
                    self._call_next()
                raise
        if entry.called:  # even when another writer stored it meanwhile: the turn must be handed on
            await self._write_for(entry)
        if entry.error is not None:
            raise entry.error.with_traceback(None)
        assert entry.new is not None
        return entry.new

    async def _write_for(self, me: _Entry) -> None:
        """Write batches (counted as a writer already) until `me` is stored, then hand the turn on."""
        try:
            while me.new is None and me.error is None and self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                # Shielded: the other requests of the batch wait on this statement, whatever becomes of ours.
                with anyio.CancelScope(shield=True):
                    await self._commit(batch)
        finally:
            self._writing -= 1
            self._call_next()
        while me.new is None and me.error is None:  # ours is in another writer's statement
            me.wake = anyio.Event()
            await me.wake.wait()

    def _call_next(self) -> None:
        if self._writing >= self.writers:
            return
        for entry in self._waiting:
            if not entry.called:
                entry.called = True
                self._writing += 1
                entry.wake.set()
                return

    async def _commit(self, batch: list[_Entry]) -> None:
        # One row per event (the first of a repeat within the batch), in key order: two statements that store
        # the same events then wait on each other in one order and cannot deadlock.
        first: dict[tuple[str, str, bool], _Entry] = {}
        for entry in batch:
            first.setdefault(entry.key, entry)
        rows = [first[key].args for key in sorted(first)]
        try:
            stored = await queries.inbox.store_inbox_events(self.pool, *map(list, zip(*rows, strict=True)))
        except Exception as exc:
            for entry in batch:
                entry.error = exc
                entry.wake.set()
            return
        self.statements += 1
        self.events += len(batch)
        new = {(row["uuid"], row["status"], row["is_final"]) for row in stored}
        for entry in batch:
            entry.new = entry.key in new and first[entry.key] is entry
            entry.wake.set()


class Answering:
    """The webhooks this process takes in, and whether they come as a flood: more than FLOOD_PER_WINDOW in the
    last WINDOW_SECONDS. Heleket sends a shop a few a second; a flood is a burst of retries after an outage, or
    someone hammering the endpoint. The settler waits out a flood (`quiet`), except one step every `limit`
    seconds, so its work still moves."""

    def __init__(self) -> None:
        self._window_start = 0.0
        self._in_window = 0  # arrivals since _window_start
        self._previous = 0  # arrivals in the window before
        self._next_pass = 0.0  # when the next waiter may go although the flood goes on

    def arrived(self) -> None:
        """One more webhook came in."""
        self._roll(anyio.current_time())
        self._in_window += 1

    def _roll(self, now: float) -> None:
        if now - self._window_start >= WINDOW_SECONDS:
            self._previous = self._in_window if now - self._window_start < 2 * WINDOW_SECONDS else 0
            self._in_window = 0
            self._window_start = now

    def recent(self, now: float) -> float:
        """About how many webhooks came in the last WINDOW_SECONDS."""
        self._roll(now)
        elapsed = (now - self._window_start) / WINDOW_SECONDS
        return self._previous * (1 - elapsed) + self._in_window

    async def quiet(self, limit: float) -> bool:
        """True once no flood is coming in; False when this waiter was let through after `limit` seconds (one
        waiter every `limit` seconds at most)."""
        deadline = anyio.current_time() + limit
        while True:
            now = anyio.current_time()
            if self.recent(now) < FLOOD_PER_WINDOW:
                return True
            if now >= deadline:
                if now >= self._next_pass:
                    self._next_pass = now + limit
                    return False
                deadline = self._next_pass
            await anyio.sleep(min(WINDOW_SECONDS / 4, deadline - now))
