"""Database work the CLI runs on its own, outside `serve`."""

from __future__ import annotations

from datetime import UTC, datetime

from shopbot.config.schema import Config
from shopbot.db.migrate import apply_migrations
from shopbot.db.pool import open_pool
from shopbot.db.server import open_database_server
from shopbot.fulfilment.cookies import CookieStore
from shopbot.fulfilment.preflight import Preflight, run_preflight
from shopbot.fulfilment.refresher import import_cookies, login
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


async def fragment_import_cookies(config: Config, text: str) -> str:
    """`shopbot fragment import-cookies`: store pasted cookies for the running shop to pick up."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        await apply_migrations(pool)
        return await import_cookies(CookieStore(pool), text)


async def fragment_login(config: Config, *, timeout: float, headless: bool | None) -> str:
    """`shopbot fragment login`: a person logs the shop's browser profile in to Fragment."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        await apply_migrations(pool)
        return await login(CookieStore(pool), config.fragment, timeout=timeout, headless=headless)


async def fragment_check(config: Config) -> Preflight:
    """`shopbot fragment check`: configuration, wallet, cookies and the service."""
    async with open_database_server(config.database) as dsn, open_pool(dsn, config.database) as pool:
        await apply_migrations(pool)
        store = CookieStore(pool)

        async def cookies_problem() -> str | None:
            latest = await store.latest()
            if latest is None:
                return "none stored and none configured" if not config.fragment.cookies else None
            if latest.expires_at is not None and latest.expires_at <= datetime.now(UTC):
                return f"the newest ones expired at {latest.expires_at:%Y-%m-%d %H:%M} UTC"
            return None

        return await run_preflight(config, cookies_problem)
