"""Forward-only migrations from `sql/migrations/NNNN_name.sql`, applied once each.

Each file runs in its own transaction and is recorded with its SHA-256 in `schema_migrations`.
The whole run holds a PostgreSQL advisory lock, so instances that start together apply each
migration exactly once. An applied file that was edited since, or a recorded migration this
version of shopbot does not have, stops the start-up instead of guessing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shopbot.db.queries import queries
from shopbot.db.sqlfiles import sql_dir
from shopbot.errors import ShopbotError

log = logging.getLogger(__name__)
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(ShopbotError):
    """The migrations on disk and in the database disagree, or one failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def read_migrations(folder: Path | None = None) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicate file is an error."""
    folder = folder or sql_dir() / "migrations"
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, path.stem, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def apply_migrations(pool: asyncpg.Pool, folder: Path | None = None) -> list[str]:
    """Apply every migration not yet applied; return the names of those applied now."""
    migrations = read_migrations(folder)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await queries.migrations.lock_migrations(conn)
        try:
            await queries.migrations.create_migrations_table(conn)
            recorded = {row["version"]: row for row in await queries.migrations.applied_migrations(conn)}
            check_recorded(migrations, recorded)
            for migration in migrations:
                if migration.version in recorded:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await queries.migrations.record_migration(
                            conn, migration.version, migration.name, migration.checksum
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {migration.name} failed: {exc}") from None
                log.info("applied migration %s", migration.name)
                applied_now.append(migration.name)
        finally:
            await queries.migrations.unlock_migrations(conn)
    return applied_now


def check_recorded(migrations: list[Migration], recorded: dict[int, asyncpg.Record]) -> None:
    """Refuse edited migrations and a database that is ahead of this code."""
    by_version = {m.version: m for m in migrations}
    for version, row in sorted(recorded.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {row['name']}, which this shopbot does not know: "
                "it was migrated by a newer version"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {migration.name} was edited after it was applied; "
                "add a new migration instead of changing an applied one"
            )
