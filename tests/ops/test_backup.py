"""`shopbot backup` and `shopbot restore`: the books survive a round trip, and nothing leaks the password."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import pytest

from shopbot.db.embedded import EmbeddedPostgres
from shopbot.db.migrate import apply_migrations
from shopbot.db.pgtools import BackupError, choose_dump_program, choose_restore_program, split_password
from shopbot.db.server import SHOP_DATABASE, ensure_shop_database, with_database
from shopbot.ledger import Ledger, MovementType, SystemAccount
from tests.conftest import create_database, drop_database
from tests.ledger.helpers import make_user
from tests.ops.serve_process import ROOT, SHOPBOT, clean_env, run_cli
from tests.ops.test_cli import assert_one_clear_line

PASSWORD = "hunter2-backup-secret"
USER = 4242


def with_password(dsn: str) -> str:
    """The DSN with a password in it (the test server trusts local connections, so any password works)."""
    parts = urlsplit(dsn)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{PASSWORD}@{host}"))


async def move_money(dsn: str, *credits: str) -> Decimal:
    """Credit the test user (created if new) and spend one unit; return the balance."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        ledger = Ledger(pool, "USD")
        await make_user(pool, USER)
        for n, amount in enumerate(credits):
            await ledger.credit(
                user_id=USER,
                amount=Decimal(amount),
                key=f"test:{uuid.uuid4()}",
                type=MovementType.RECHARGE,
                reference=f"invoice:{n}",
                source=SystemAccount.HELEKET_CLEARING,
            )
        await ledger.debit(
            user_id=USER,
            amount=Decimal("1"),
            key=f"test:{uuid.uuid4()}",
            type=MovementType.PURCHASE,
            reference="order:1",
            destination=SystemAccount.SHOP_REVENUE,
        )
        return (await ledger.balance(USER)).available
    finally:
        await pool.close()


async def balance(dsn: str) -> Decimal:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        return (await Ledger(pool, "USD").balance(USER)).available
    finally:
        await pool.close()


def shopbot(config: Path, *args: str, stdin: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """A shopbot command with stdin that is not a terminal (a file, or nothing), as from cron or a script."""
    with stdin.open("rb") if stdin else open(os.devnull, "rb") as source:
        return subprocess.run(
            [*SHOPBOT, "--config", str(config), *args],
            cwd=ROOT,
            env=clean_env(**env),
            stdin=source,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shopbot.toml"
    path.write_text("")
    return path


async def test_a_backup_restores_the_balances_and_the_books_into_a_fresh_database(
    tmp_path: Path, config: Path, postgres_url: str, database_url: str
) -> None:
    assert await move_money(database_url, "12.34", "5") == Decimal("16.34")
    archive = tmp_path / "nightly.dump"
    result = shopbot(config, "backup", "--output", str(archive), SHOPBOT_DATABASE__URL=with_password(database_url))
    assert result.returncode == 0, result.stderr
    assert f"to {archive}" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds everything: only its owner reads it
    assert not list(tmp_path.glob(".*.partial"))

    fresh = await create_database(postgres_url)  # no tables at all, as on a new machine
    fresh_url = with_database(postgres_url, fresh)
    try:
        result = shopbot(config, "restore", str(archive), "--yes", SHOPBOT_DATABASE__URL=with_password(fresh_url))
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert await balance(fresh_url) == Decimal("16.34")
        verify = run_cli("--config", str(config), "ledger", "verify", SHOPBOT_DATABASE__URL=fresh_url)
        assert verify.returncode == 0, verify.stderr
        assert "the ledger balances" in verify.stdout

        # Restoring over a database that moved on since replaces it, not merges into it; this time the
        # backup comes through standard input, as from `docker compose run -T shopbot restore - --yes < file`.
        assert await move_money(fresh_url, "100") == Decimal("115.34")
        result = shopbot(config, "restore", "-", "--yes", stdin=archive, SHOPBOT_DATABASE__URL=fresh_url)
        assert result.returncode == 0, result.stderr
        assert "restored the backup from standard input" in result.stdout
        assert await balance(fresh_url) == Decimal("16.34")
        assert run_cli("--config", str(config), "ledger", "verify", SHOPBOT_DATABASE__URL=fresh_url).returncode == 0
    finally:
        await drop_database(postgres_url, fresh)


async def test_the_password_reaches_pg_dump_only_through_its_environment(
    tmp_path: Path, config: Path, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    major = conn.get_server_version().major
    await conn.close()
    # A pg_dump first on PATH that records how it was called.
    fake = tmp_path / "bin" / "pg_dump"
    fake.parent.mkdir()
    fake.write_text(f"""#!/bin/sh
if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) {major}.0"; exit 0; fi
printf '%s\\n' "$@" > {tmp_path}/argv
printf '%s' "$PGPASSWORD" > {tmp_path}/password
for arg; do case $arg in --file=*) echo archive > "${{arg#--file=}}";; esac; done
""")
    fake.chmod(0o755)
    result = shopbot(
        config,
        "backup",
        "--output",
        str(tmp_path / "out.dump"),
        PATH=f"{fake.parent}:{os.environ['PATH']}",
        SHOPBOT_DATABASE__URL=with_password(database_url),
    )
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "argv").read_text()
    assert "--format=custom" in argv and urlsplit(database_url).path in argv
    assert PASSWORD not in argv
    assert (tmp_path / "password").read_text() == PASSWORD


async def test_a_failed_backup_leaves_no_file_and_no_password(tmp_path: Path, config: Path, postgres_url: str) -> None:
    missing = with_password(with_database(postgres_url, "shopbot_no_such_database"))
    result = shopbot(config, "backup", "--output", str(tmp_path / "out.dump"), SHOPBOT_DATABASE__URL=missing)
    assert_one_clear_line(result, "shopbot_no_such_database is unavailable")
    assert PASSWORD not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == [config]


async def test_restore_refuses_what_is_not_a_backup_an_unconfirmed_restore_and_a_database_in_use(
    tmp_path: Path, config: Path, database_url: str
) -> None:
    garbage = tmp_path / "garbage.dump"
    garbage.write_text("not an archive\n")
    assert_one_clear_line(
        shopbot(config, "restore", str(garbage), "--yes", SHOPBOT_DATABASE__URL=database_url),
        "garbage.dump: not a backup made by `shopbot backup`",
    )
    assert_one_clear_line(
        shopbot(config, "restore", str(tmp_path / "nope.dump"), SHOPBOT_DATABASE__URL=database_url),
        "nope.dump: cannot be read (No such file or directory)",
    )

    archive = tmp_path / "good.dump"
    assert shopbot(config, "backup", "-o", str(archive), SHOPBOT_DATABASE__URL=database_url).returncode == 0
    assert_one_clear_line(
        shopbot(config, "restore", str(archive), SHOPBOT_DATABASE__URL=database_url), "add --yes to confirm"
    )
    assert_one_clear_line(
        shopbot(config, "restore", "-", stdin=archive, SHOPBOT_DATABASE__URL=database_url),
        "cannot ask for confirmation: add --yes",
    )

    await move_money(database_url, "7")
    user_of_the_database = await asyncpg.connect(database_url, server_settings={"application_name": "shopbot"})
    try:
        result = shopbot(config, "restore", str(archive), "--yes", SHOPBOT_DATABASE__URL=database_url)
        assert_one_clear_line(result, "is in use (1 shopbot session(s)): stop shopbot")
    finally:
        await user_of_the_database.close()
    assert await balance(database_url) == Decimal("6")  # nothing was replaced


def test_the_password_is_taken_out_of_the_url_wherever_it_is() -> None:
    in_user_part = split_password("postgresql://shop:p%40ss%3Aword@db.example:5433/shop?sslmode=require", "d")
    assert (in_user_part.uri, in_user_part.password) == (
        "postgresql://shop@db.example:5433/shop?sslmode=require",
        "p@ss:word",
    )
    in_query = split_password("postgresql://shop@/shop?host=/run/postgresql&password=s3cret", "d")
    assert (in_query.uri, in_query.password) == ("postgresql://shop@/shop?host=/run/postgresql", "s3cret")
    assert in_query.redact("FATAL: password s3cret rejected") == "FATAL: password ******** rejected"
    assert split_password("postgresql://shop@db/shop", "d").password == ""


def test_programs_too_old_for_the_server_or_the_archive_are_named() -> None:
    with pytest.raises(BackupError, match="cannot back up PostgreSQL 99: install PostgreSQL 99's client programs"):
        choose_dump_program(99)
    with pytest.raises(BackupError, match="cannot restore a backup made by pg_dump 99"):
        choose_restore_program(Path("x.dump"), 99, 99)
    # pg_restore 17+ sets transaction_timeout, which PostgreSQL 16 and older refuse.
    with pytest.raises(
        BackupError, match="only PostgreSQL 17 or newer can restore, and the database runs PostgreSQL 16"
    ):
        choose_restore_program(Path("x.dump"), 18, 16)


async def test_the_embedded_database_is_backed_up_while_the_shop_runs_and_restored_when_it_stopped(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var" / "postgres"
    config = tmp_path / "shopbot.toml"
    config.write_text(f'[database]\nembedded_dir = "{data_dir}"\n')
    assert_one_clear_line(shopbot(config, "backup"), "no embedded database in", "nothing to back up")

    # This process plays the running shop: it owns the data dir and its server.
    server = EmbeddedPostgres(data_dir)
    admin_dsn = await anyio.to_thread.run_sync(server.start)
    try:
        await ensure_shop_database(admin_dsn, 10)
        dsn = with_database(admin_dsn, SHOP_DATABASE)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            await apply_migrations(pool)
        finally:
            await pool.close()
        assert await move_money(dsn, "20") == Decimal("19")
        archive = tmp_path / "embedded.dump"
        result = shopbot(config, "backup", "-o", str(archive))
        assert result.returncode == 0, result.stderr
        assert f"the embedded database in {data_dir}" in result.stdout
        assert await move_money(dsn, "30") == Decimal("48")
        assert_one_clear_line(
            shopbot(config, "restore", str(archive), "--yes"),
            f"in use by a running shopbot (pid {os.getpid()}): stop it before restoring",
        )
    finally:
        await anyio.to_thread.run_sync(server.stop)

    result = shopbot(config, "restore", str(archive), "--yes")
    assert result.returncode == 0, result.stderr
    verify = shopbot(config, "ledger", "verify")
    assert verify.returncode == 0, verify.stderr
    admin_dsn = await anyio.to_thread.run_sync(server.start)
    try:
        assert await balance(with_database(admin_dsn, SHOP_DATABASE)) == Decimal("19")
    finally:
        await anyio.to_thread.run_sync(server.stop)
