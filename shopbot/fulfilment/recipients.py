"""Recipient lookups: who a username belongs to, asked through a small pool of library clients of their own.

The payer never waits for a lookup. Lookups use their own `FragmentAPIv3` clients (each signs in on its
own) and their own thread limiter, so no lock, client or thread is shared with the order worker. They are
bounded three ways, and a lookup over a bound is answered "busy" at once instead of queueing:
- at most `lookup_clients` calls run at a time, one per client, and a lookup waits at most
  `lookup_wait_seconds` for a free client;
- a user has at most one lookup in flight;
- a call that takes longer than `lookup_timeout` is given up as "Fragment cannot be reached".

A thread gives up with its caller. A caller that gave up before its thread began does not make the call;
one that gave up during it leaves the client with the thread, which puts it back only when the call is
really over, so two threads never share a client. Fresh cookies (`use_cookies`) reach every client: idle
ones are dropped at once, busy ones when their thread hands them back; each is rebuilt on its next use.

Buyers often name the same recipient (a friend, a channel's owner, themselves after a typo). Everyone asking
for a name while a lookup of it is out waits for that one call and gets its answer (its "busy" and its
failure too); and a name that was found is remembered for `lookup_cache_seconds`, so it is answered without
Fragment. A name nobody has is never remembered: a buyer who has just set that username is found at once.
Who a username belongs to may change within the minute; the order itself names the recipient to Fragment
again when it is paid, so a remembered answer only ever shows a name, it never sends Stars.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from fragment_api_lib.exceptions import FragmentAPIError
from fragment_api_lib.v3 import FragmentAPIv3

from shopbot.cache import LocalEntries
from shopbot.config.schema import FragmentConfig
from shopbot.config.secret import Secret
from shopbot.errors import ShopbotError
from shopbot.fulfilment.fragment import (
    NO_SUCH_RECIPIENT,
    BadRecipient,
    FragmentFailure,
    Recipient,
    classify,
    normalize_username,
)

log = logging.getLogger(__name__)
# How often a lookup waiting for a client looks again for one a given-up thread handed back (a caller that
# gets its answer wakes the waiters at once).
RECHECK_SECONDS = 0.1
# Found recipients remembered at most (the least recently asked go first).
FOUND_ENTRIES = 10_000
LeaseState = Literal["waiting", "calling", "done", "abandoned"]


class LookupBusy(ShopbotError):
    """Every lookup client is busy, or this user already has a lookup in flight; nothing was asked."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"recipient lookups are busy ({reason}); try again in a moment")


@dataclass(eq=False)
class _Lease:
    """One client lent to one lookup; `state` changes only under the pool's lock."""

    api: FragmentAPIv3 | None  # None: built in the worker thread on first use
    cookies: Secret | None
    generation: int
    state: LeaseState = "waiting"


@dataclass(eq=False)
class _Flight:
    """One lookup of a name on Fragment, and its answer for everyone who asked for that name meanwhile."""

    done: anyio.Event = field(default_factory=anyio.Event)
    answered: bool = False  # False once done: the asker who made the call gave up before its answer
    recipient: Recipient | None = None
    error: LookupBusy | FragmentFailure | None = None


class RecipientLookups:
    """The lookup pool; `user_info` is what the shopfront asks."""

    def __init__(self, config: FragmentConfig, cookies: Secret | None = None) -> None:
        self.config = config
        self.size = config.lookup_clients
        self.wait_seconds = config.lookup_wait_seconds
        self.timeout = config.lookup_timeout
        # Guards the fields below, which threads change too; held for list operations only, never across a call.
        self._lock = threading.Lock()
        self._idle: list[FragmentAPIv3] = []
        self._unbuilt = self.size
        self._cookies = cookies if cookies else (config.cookies or None)
        self._generation = 0
        # Event-loop side only (made on first use: anyio's primitives belong to a running loop).
        self._threads: anyio.CapacityLimiter | None = None
        self._users: set[int] = set()
        self._returned: anyio.Event | None = None
        self._flights: dict[str, _Flight] = {}  # by lower-case name: the lookups out now
        self._found: LocalEntries[str, Recipient] = LocalEntries(FOUND_ENTRIES)
        self.found_seconds = config.lookup_cache_seconds

    def __repr__(self) -> str:
        return f"RecipientLookups(clients={self.size}, idle={len(self._idle)})"

    def use_cookies(self, cookies: Secret) -> None:
        """Fresh cookies from the refresher: every lookup client from now on signs in with them."""
        with self._lock:
            self._cookies = cookies
            self._generation += 1
            self._unbuilt += len(self._idle)
            self._idle.clear()

    def known(self, username: str) -> Recipient | None:
        """The recipient found for `username` within `lookup_cache_seconds`, without asking anyone; else None."""
        try:
            return self._found.get(normalize_username(username).lower())
        except BadRecipient:
            return None

    async def user_info(self, username: str, *, user_id: int | None = None) -> Recipient | None:
        """Who the username belongs to, as Fragment sees it; None when nobody has it (in either of the service's
        answers: `found: false`, or an error such as USER_NOT_FOUND). Raises BadRecipient for a malformed name,
        LookupBusy over a bound, FragmentFailure when the service does not answer."""
        name = normalize_username(username)
        key = name.lower()  # Telegram usernames are case-insensitive
        found = self._found.get(key)
        if found is not None:
            return found
        user = {user_id} if user_id is not None else set()
        if user & self._users:
            raise LookupBusy("one lookup per user at a time")
        self._users |= user
        try:
            while True:
                flight = self._flights.get(key)
                if flight is None:
                    return await self._lead(key, name)
                await flight.done.wait()
                if flight.answered:
                    if flight.error is not None:
                        raise flight.error.with_traceback(None)
                    return flight.recipient
                # Whoever made the call gave up before its answer (their update was cancelled): ask again.
        finally:
            self._users -= user

    async def _lead(self, key: str, name: str) -> Recipient | None:
        """Ask Fragment, answering everyone who asks for `key` meanwhile; a found recipient is remembered."""
        flight = self._flights[key] = _Flight()
        try:
            recipient = await self._ask(name)
        except (LookupBusy, FragmentFailure) as exc:
            flight.answered, flight.error = True, exc
            raise
        else:
            flight.answered, flight.recipient = True, recipient
            if recipient is not None and self.found_seconds > 0:
                self._found.put(key, recipient, self.found_seconds)
            return recipient
        finally:
            del self._flights[key]
            flight.done.set()

    async def _ask(self, name: str) -> Recipient | None:
        """One library call on a free client, within the bounds."""
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.size)  # never the default limiter the payer's calls use
        lease = await self._lease()
        try:
            with anyio.fail_after(self.timeout):
                data: dict[str, Any] = await anyio.to_thread.run_sync(
                    self._call, lease, name, abandon_on_cancel=True, limiter=self._threads
                )
        except TimeoutError:
            log.warning("recipient lookup: no answer from Fragment within %g s", self.timeout)
            raise FragmentFailure("transient", "TIMEOUT", f"no answer within {self.timeout:g} s") from None
        except FragmentAPIError as exc:
            if getattr(exc, "error_code", None) in NO_SUCH_RECIPIENT:
                return None  # the user's mistake, not an outage
            failure = classify(exc, submitting=False)
            log.warning("recipient lookup failed: %s", failure)
            raise failure from None
        except ValueError as exc:  # the library's own refusals
            raise FragmentFailure("transient", None, str(exc)) from None
        finally:
            self._give_up(lease)
        if not data.get("found"):
            return None
        return Recipient(str(data.get("username") or name), str(data.get("name") or name))

    async def _lease(self) -> _Lease:
        """A free client within `wait_seconds`, else LookupBusy."""
        with anyio.move_on_after(self.wait_seconds):
            while True:
                lease = self._take()
                if lease is not None:
                    return lease
                if self._returned is None:
                    self._returned = anyio.Event()
                returned = self._returned
                with anyio.move_on_after(RECHECK_SECONDS):
                    await returned.wait()
        raise LookupBusy(f"all {self.size} lookup clients busy")

    def _take(self) -> _Lease | None:
        with self._lock:
            if self._idle:
                api: FragmentAPIv3 | None = self._idle.pop()
            elif self._unbuilt:
                self._unbuilt -= 1
                api = None
            else:
                return None
            return _Lease(api, self._cookies, self._generation)

    def _hand_back(self, lease: _Lease) -> None:
        """The client goes back to the pool (a stale or unbuilt one as a slot to build afresh). Under the lock."""
        if lease.api is not None and lease.generation == self._generation:
            self._idle.append(lease.api)
        else:
            self._unbuilt += 1

    def _give_up(self, lease: _Lease) -> None:
        """The caller is done with the lease, answered or not. A thread that has not begun never will; one that
        is calling keeps the client until its call is over."""
        with self._lock:
            if lease.state == "waiting":
                lease.state = "abandoned"
                self._hand_back(lease)
            elif lease.state == "calling":
                lease.state = "abandoned"
        returned, self._returned = self._returned, None
        if returned is not None:
            returned.set()

    def _call(self, lease: _Lease, name: str) -> dict[str, Any]:
        """In the worker thread: the library call, unless the caller already gave up."""
        with self._lock:
            if lease.state != "waiting":
                return {}
            lease.state = "calling"
        try:
            if lease.api is None:
                lease.api = self._build(lease.cookies)
            api = lease.api
            try:
                data: dict[str, Any] = api.user_info(name)
            except FragmentAPIError as exc:
                if getattr(exc, "status", None) != 401:
                    raise
                api.auth()  # the key expired; the library does not sign in again itself
                data = api.user_info(name)
            return data
        finally:
            with self._lock:
                lease.state = "done"
                self._hand_back(lease)

    def _build(self, cookies: Secret | None) -> FragmentAPIv3:
        config = self.config
        trust = {"max_ton_per_order": config.max_ton_per_order, "max_fee_percent": config.max_fee_percent}
        return FragmentAPIv3(
            config.seed_phrase.reveal(),
            wallet_type=config.wallet_type,
            fragment_cookies=cookies.reveal() if cookies else None,
            base_url=config.base_url.rstrip("/"),
            trust=trust,
            timeout=self.timeout,
        )
