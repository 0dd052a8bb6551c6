"""The asyncpg pool: one per process, every connection with a statement timeout, reset on release only when it
took session state (shopbot/db/connection.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg

from shopbot.config.schema import DatabaseConfig
from shopbot.db.connection import ShopConnection
from shopbot.db.queries import queries
from shopbot.errors import ShopbotError

log = logging.getLogger(__name__)


class DatabaseUnavailableError(ShopbotError):
    """The database cannot be reached or refused us; the message never holds a password."""

    def __init__(self, dsn: str, reason: str) -> None:
        super().__init__(f"database {describe_dsn(dsn)} is unavailable: {reason}")


class DatabaseBusyError(ShopbotError):
    """No pool connection came free in time (all busy, or the server slow to take a new one): the step
    that asked is refused before it touched the database."""

    def __init__(self, waited: float, size: int) -> None:
        self.waited = waited
        super().__init__(f"no database connection came free within {waited:g} s (pool of {size})")


OUTAGE_RETRY_SECONDS = 10  # what a user or Heleket is told to wait while the database is out of reach


# What asyncpg raises while the database is out of reach (down, restarting, the connection lost), as opposed to
# a statement that was wrong: the shop answers "try again shortly" and recovers once the database is back.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is out of reach rather than that a statement was wrong."""
    return isinstance(exc, OUTAGE_ERRORS)


async def database_answers(pool: asyncpg.Pool, *, within: float = 3.0) -> bool:
    """Whether the database answers a ping within `within` seconds (waiting for a connection included): after
    an outage-like error, tells an outage from one failed statement."""
    with anyio.move_on_after(within):
        try:
            await queries.health.ping(pool)
        except Exception:
            return False
        return True
    return False


class ShopPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no types: its Pool is Any to mypy
    """asyncpg's pool, where every acquire waits at most `acquire_timeout` unless the caller says otherwise.

    Without it a crowd of requests waits on the pool forever, each holding its memory and its client.
    `_acquire` is where both `async with pool.acquire()` and `pool.fetch(...)` wait, so one override
    bounds every caller. The timeout is logged here, once, with what to do; callers only answer "busy".
    """

    acquire_timeout: float = 10.0

    async def _acquire(self, timeout: float | None) -> Any:
        waited = self.acquire_timeout if timeout is None else timeout
        try:
            return await super()._acquire(waited)
        except TimeoutError:
            size = self.get_max_size()
            log.warning(
                "every database connection stayed busy for %g s (pool of %d); the request was refused. "
                "Raise [database] pool_max or acquire_timeout, or look for slow queries",
                waited,
                size,
            )
            raise DatabaseBusyError(waited, size) from None


def describe_dsn(dsn: str) -> str:
    """host:port/database of a DSN, without user or password."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def reason_of(exc: BaseException) -> str:
    """A short reason that cannot leak the DSN: the exception's class and first line."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first_line


async def connect(dsn: str, timeout: float) -> asyncpg.Connection:
    """One connection outside the pool (bootstrap, backups), failing with one clear line when unreachable."""
    try:
        return await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailableError(dsn, reason_of(exc)) from None


@contextlib.asynccontextmanager
async def open_pool(dsn: str, config: DatabaseConfig) -> AsyncIterator[asyncpg.Pool]:
    """Open the pool, failing with one clear line when the server is unreachable."""
    settings = {
        "statement_timeout": str(int(config.statement_timeout * 1000)),
        "application_name": "shopbot",
    }
    try:
        # asyncpg.create_pool with our pool class: its own arguments, spelled out.
        pool = ShopPool(
            dsn,
            connection_class=ShopConnection,  # its reset is a round trip only after session state
            record_class=asyncpg.Record,
            init_size=None,
            min_size=config.pool_min,
            max_size=config.pool_max,
            max_queries=50000,
            max_inactive_connection_lifetime=300.0,
            connect=None,
            setup=None,
            init=None,
            reset=None,
            loop=None,
            timeout=config.connect_timeout,
            server_settings=settings,
        )
        pool.acquire_timeout = config.acquire_timeout
        await pool
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise DatabaseUnavailableError(dsn, reason_of(exc)) from None
    try:
        yield pool
    finally:
        # A cancelled scope would re-raise at every await inside asyncpg's close; shield it.
        with anyio.move_on_after(5, shield=True) as scope:
            await pool.close()
        if scope.cancelled_caught:
            pool.terminate()
