"""Database work the CLI runs on its own, outside `serve`."""

from __future__ import annotations

from shopbot.config.schema import Config
from shopbot.db.migrate import apply_migrations
from shopbot.db.pool import open_pool
from shopbot.db.server import open_database_server


async def migrate(config: Config) -> list[str]:
    """`shopbot migrate`: apply pending migrations and return their names."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        return await apply_migrations(pool)
