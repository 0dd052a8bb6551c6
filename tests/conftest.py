"""Shared fixtures: a real PostgreSQL, a fresh migrated database per test, Redis when there is one.

PostgreSQL is the server in TEST_DATABASE_URL when set, otherwise an embedded server started once
per test session under var/test-postgres. Each test gets its own database cloned from a template
that was migrated once, so tests never see each other's rows and never mock our SQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from shopbot.db.migrate import apply_migrations
from shopbot.db.server import with_database
from shopbot.guard.redis_link import RedisLink

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A maintenance DSN of a real PostgreSQL server for the whole session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from shopbot.db.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(ROOT / "var" / "test-postgres")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A database migrated once; every test database is a copy of it."""
    name = f"shopbot_template_{os.getpid()}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await asyncpg.create_pool(with_database(postgres_url, name), min_size=1, max_size=2)
        try:
            await apply_migrations(pool)
        finally:
            await pool.close()
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_database(postgres_url: str, template: str | None = None) -> str:
    name = f"shopbot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await admin.close()
    return name


async def drop_database(postgres_url: str, name: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database of this test's own."""
    name = await create_database(postgres_url, template_database)
    yield with_database(postgres_url, name)
    await drop_database(postgres_url, name)


@pytest.fixture
async def empty_database_url(postgres_url: str) -> AsyncIterator[str]:
    """DSN of a fresh database with no tables at all (for migration tests)."""
    name = await create_database(postgres_url)
    yield with_database(postgres_url, name)
    await drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A Redis server: TEST_REDIS_URL when set, else fakeredis (Lua included) serving real TCP."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    import threading

    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, name="fake redis", daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """An empty Redis database for this test."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_server_url)
    await client.flushdb()
    yield redis_server_url
    await client.flushdb()
    await client.aclose()


@pytest.fixture(params=["redis", "in-process"])
async def link(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RedisLink]:
    """Shared state's two homes: a Redis every instance sees, or this process alone (no `[redis] url`)."""
    if request.param == "in-process":
        yield RedisLink(None)
        return
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    try:
        yield RedisLink(client)
    finally:
        await client.aclose()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()
