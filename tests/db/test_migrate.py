"""Migrations: applied once, in order, safely from several instances, and never silently edited."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import asyncpg
import pytest

from shopbot.db.migrate import MigrationError, apply_migrations, read_migrations
from shopbot.db.sqlfiles import sql_dir


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", folder)
    return folder


async def open_small_pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(url, min_size=1, max_size=2)


async def test_fresh_database_gets_every_migration_once(empty_database_url: str) -> None:
    pool = await open_small_pool(empty_database_url)
    try:
        first = await apply_migrations(pool)
        second = await apply_migrations(pool)
        recorded = await pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert await pool.fetchval("SELECT to_regclass('users') IS NOT NULL")
    finally:
        await pool.close()
    assert first == [m.name for m in read_migrations()]
    assert second == []
    assert [r["name"] for r in recorded] == first


async def test_instances_starting_together_apply_each_migration_once(empty_database_url: str) -> None:
    pools = [await open_small_pool(empty_database_url) for _ in range(4)]
    results: list[list[str]] = []

    async def start_instance(pool: asyncpg.Pool) -> None:
        results.append(await apply_migrations(pool))

    try:
        async with anyio.create_task_group() as group:
            for pool in pools:
                group.start_soon(start_instance, pool)
    finally:
        for pool in pools:
            await pool.close()
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in read_migrations())


async def test_edited_migration_is_refused(empty_database_url: str, migrations_dir: Path) -> None:
    pool = await open_small_pool(empty_database_url)
    try:
        await apply_migrations(pool, migrations_dir)
        first = sorted(migrations_dir.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- a later edit\n")
        with pytest.raises(MigrationError, match="was edited after it was applied"):
            await apply_migrations(pool, migrations_dir)
    finally:
        await pool.close()


async def test_new_migration_is_applied_and_a_failing_one_changes_nothing(
    empty_database_url: str, migrations_dir: Path
) -> None:
    pool = await open_small_pool(empty_database_url)
    try:
        await apply_migrations(pool, migrations_dir)
        (migrations_dir / "9000_widgets.sql").write_text("CREATE TABLE widgets (id INT);")
        (migrations_dir / "9001_broken.sql").write_text("CREATE TABLE gadgets (id INT); SELECT nonsense_fn();")
        with pytest.raises(MigrationError, match="migration 9001_broken failed"):
            await apply_migrations(pool, migrations_dir)
        assert await pool.fetchval("SELECT to_regclass('widgets') IS NOT NULL")
        assert await pool.fetchval("SELECT to_regclass('gadgets') IS NULL")
        versions = [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")]
        assert 9000 in versions and 9001 not in versions
    finally:
        await pool.close()


async def test_database_ahead_of_the_code_is_refused(empty_database_url: str, migrations_dir: Path) -> None:
    pool = await open_small_pool(empty_database_url)
    try:
        (migrations_dir / "9000_future.sql").write_text("SELECT 1;")
        await apply_migrations(pool, migrations_dir)
        (migrations_dir / "9000_future.sql").unlink()
        with pytest.raises(MigrationError, match="migrated by a newer version"):
            await apply_migrations(pool, migrations_dir)
    finally:
        await pool.close()


def test_misnamed_migration_file_is_refused(migrations_dir: Path) -> None:
    (migrations_dir / "7_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        read_migrations(migrations_dir)
