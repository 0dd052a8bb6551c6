"""Database work the CLI runs on its own, outside `serve`."""

from __future__ import annotations

from shopbot.config.schema import Config
from shopbot.db.migrate import apply_migrations
from shopbot.db.pool import open_pool
from shopbot.db.server import open_database_server
from shopbot.ledger.verify import LedgerReport, verify_ledger


async def migrate(config: Config) -> list[str]:
    """`shopbot migrate`: apply pending migrations and return their names."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        return await apply_migrations(pool)


async def verify_books(config: Config) -> LedgerReport:
    """`shopbot ledger verify`: check the books on the configured database."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        await apply_migrations(pool)
        return await verify_ledger(pool)
