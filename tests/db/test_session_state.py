"""Session state on pooled connections: whatever one user of a connection took (an advisory lock, LISTEN, a
setting, an open transaction) never reaches the next user, and the wallet lock still excludes a second
worker. The pool resets only connections that took such state, so these are the guards of that shortcut."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

from shopbot.config.schema import DatabaseConfig
from shopbot.db.connection import SessionStateOnPoolError
from shopbot.db.pool import open_pool
from shopbot.db.queries import queries, takes_session_state
from shopbot.fulfilment.wallet_lock import LockLost, open_wallet_lock

WALLET = "UQ-test-wallet"
ADVISORY_LOCKS_HERE = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
WAITING_HERE = (  # sessions of this test's database waiting for an advisory lock
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The shop's pool with a single connection, so the next acquire gets the connection the last one left."""
    async with open_pool(database_url, DatabaseConfig(pool_min=1, pool_max=1)) as pool:
        yield pool


# Every named query that takes a session lock, with its arguments.
SESSION_LOCKS = [
    ("orders", "wallet_lock", (WALLET,)),
    ("admin_orders", "try_wallet_lock", (WALLET,)),
    ("invoices", "try_reconciler_lock", ()),
    ("broadcasts", "broadcaster_lock", ()),
    ("migrations", "lock_migrations", ()),
]


@pytest.mark.parametrize(("namespace", "name", "args"), SESSION_LOCKS)
async def test_a_session_lock_left_on_a_pooled_connection_never_reaches_its_next_user(
    one_connection: asyncpg.Pool, namespace: str, name: str, args: tuple[Any, ...]
) -> None:
    async with one_connection.acquire() as conn:
        first_pid = await conn.fetchval("SELECT pg_backend_pid()")
        await getattr(getattr(queries, namespace), name)(conn, *args)
        assert await conn.fetchval(ADVISORY_LOCKS_HERE) == 1
        # The holder leaves without unlocking (a crash, a cancelled task).
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == first_pid  # the same session, not a new one
        assert await conn.fetchval(ADVISORY_LOCKS_HERE) == 0


async def test_a_wallet_lock_taken_through_the_pool_is_not_held_by_the_connections_next_user(
    one_connection: asyncpg.Pool, database_url: str
) -> None:
    async with open_wallet_lock(one_connection, WALLET) as lock:
        await lock.acquire()
        await lock.check()
    async with open_wallet_lock(one_connection, WALLET) as lock:
        with pytest.raises(LockLost, match="no longer holds it"):
            await lock.check()
    other = await asyncpg.connect(database_url)
    try:
        assert await queries.admin_orders.try_wallet_lock(other, WALLET)  # another instance can take it at once
    finally:
        await other.close()


async def test_the_wallet_lock_still_excludes_a_second_worker(database_url: str) -> None:
    async with open_pool(database_url, DatabaseConfig(pool_min=1, pool_max=3)) as pool:
        order: list[str] = []

        async def second_worker() -> None:
            async with open_wallet_lock(pool, WALLET) as lock:
                await lock.acquire()
                order.append("second has it")
                await lock.check()
                await lock.release()

        async with open_wallet_lock(pool, WALLET) as first:
            await first.acquire()
            async with anyio.create_task_group() as group:
                group.start_soon(second_worker)
                with anyio.fail_after(10):  # a deadline for a hung test, not a measurement
                    while not await pool.fetchval(WAITING_HERE):
                        await anyio.sleep(0.02)
                assert order == []  # waiting on the lock, not paying
                await first.check()
                order.append("first releases")
                await first.release()
        assert order == ["first releases", "second has it"]


async def test_listening_never_reaches_the_connections_next_user(one_connection: asyncpg.Pool) -> None:
    conn = await one_connection.acquire()
    await conn.add_listener("shopbot_test", lambda *_args: None)
    assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 1
    with pytest.warns(asyncpg.InterfaceWarning, match="released to the pool but has 1 active notification listener"):
        await one_connection.release(conn)
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0


async def test_a_session_setting_marked_by_raw_sql_is_reset(one_connection: asyncpg.Pool) -> None:
    async with one_connection.acquire() as conn:
        default = await conn.fetchval("SHOW statement_timeout")
        conn.mark_session_state()
        await conn.execute("SET statement_timeout = 1234")
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == default == "10s"  # the pool's own setting


async def test_a_transaction_left_open_is_rolled_back_before_the_next_user(one_connection: asyncpg.Pool) -> None:
    await one_connection.execute("CREATE TABLE scratch (x int)")
    async with one_connection.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO scratch VALUES (1)")
    async with one_connection.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM scratch") == 0


async def test_a_session_lock_asked_of_the_pool_itself_is_refused(one_connection: asyncpg.Pool) -> None:
    with pytest.raises(SessionStateOnPoolError, match="'wallet_lock' takes session state"):
        await queries.orders.wallet_lock(one_connection, WALLET)
    assert await one_connection.fetchval(ADVISORY_LOCKS_HERE) == 0


@pytest.mark.parametrize(
    ("sql", "takes"),
    [
        ("SELECT pg_advisory_lock(hashtext($1))", True),
        ("SELECT pg_try_advisory_lock_shared(1)", True),
        ("LISTEN orders", True),
        ("SET statement_timeout = 5", True),
        ("SELECT set_config('x.y', '1', false)", True),
        ("SELECT pg_advisory_xact_lock(1)", False),  # ends with its transaction
        ("SET LOCAL statement_timeout = 5", False),
        ("UPDATE users\nSET language = $2\nWHERE id = $1", False),
        ("-- the settings are session-wide\nSET search_path = public", True),
        ("SELECT pg_advisory_unlock(1)", False),
    ],
)
def test_statements_that_outlive_their_transaction_are_recognised(sql: str, takes: bool) -> None:
    assert takes_session_state(sql) is takes
