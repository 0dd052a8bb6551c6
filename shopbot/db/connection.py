"""The pool's connection: reset on release only when it took session state.

asyncpg resets every connection it takes back (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
RESET ALL;`): a round trip on every pool use, most of which left nothing behind. The shop's session state
is known: session advisory locks (the wallet lock, the reconciler's and the broadcaster's turn, the
migrations), LISTEN, session settings. The code that takes it marks the connection first: a named query
whose SQL takes it does so itself (`Query.session_state`), `add_listener` does so here, raw SQL calls
`mark_session_state`. A marked connection gets asyncpg's full reset on release, then counts as clean again;
any other gets asyncpg's local part only (an open transaction rolled back, listener callbacks dropped),
which costs no round trip unless a transaction was left open.

Marking happens before the statement is sent, so a statement cancelled halfway still leaves the
connection marked. A connection whose reset fails is closed by the pool, never handed out.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shopbot.errors import ShopbotError


class SessionStateOnPoolError(ShopbotError):
    """A statement that takes session state was given the pool: it would run on some connection that goes
    straight back to the pool, so what it took would be lost or, worse, handed to the next user."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} takes session state: run it on a connection from pool.acquire(), not the pool")


class ShopConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """asyncpg's connection, remembering whether it took session state since its last reset."""

    _session_state = False

    def mark_session_state(self) -> None:
        """This session now holds something the next user of the connection must not inherit."""
        self._session_state = True

    async def add_listener(self, channel: str, callback: Any) -> None:
        self.mark_session_state()
        await super().add_listener(channel, callback)

    def get_reset_query(self) -> str:
        # asyncpg's documented hook: `reset()` sends this unless it is empty.
        return str(super().get_reset_query()) if self._session_state else ""

    async def reset(self, *, timeout: float | None = None) -> None:
        await super().reset(timeout=timeout)
        self._session_state = False


def mark_session_state(db: Any, what: str) -> None:
    """Mark the connection `db` (a pooled one, through its proxy) before `what` takes session state on it.

    A connection of the shop's pool is marked; one opened on its own needs no mark (nobody inherits it);
    the pool itself is refused, since there is no connection to hold the state.
    """
    if isinstance(db, asyncpg.Pool):
        raise SessionStateOnPoolError(what)
    mark = getattr(db, "mark_session_state", None)
    if mark is not None:
        mark()
