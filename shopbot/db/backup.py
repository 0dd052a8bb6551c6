"""`shopbot backup` and `shopbot restore`: PostgreSQL's own pg_dump and pg_restore on the configured database.

The embedded database: a backup while the shop runs reads the server that shop started, through the
socket it advertises (pg_dump takes a consistent snapshot and changes nothing); with no shop running
the server is started for the backup, as `serve` does. A restore refuses while a shop runs on the data
dir, and on a configured server while other sessions use the database.

A restore is one transaction (`--single-transaction --exit-on-error`): it replaces every object the
backup holds (`--clean --if-exists`) or, failing anywhere, changes nothing. Owners and grants are not
restored (`--no-owner --no-privileges`): the configured user owns what it restores, so a backup of the
embedded server restores into a managed one and back. Which pg_dump and pg_restore run, and how the
password reaches them: `shopbot/db/pgtools.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from shopbot.config.schema import Config, DatabaseConfig
from shopbot.db.embedded import is_our_postmaster, read_postmaster_pid, socket_dsn
from shopbot.db.pgtools import (
    BackupError,
    PgProgram,
    Target,
    choose_dump_program,
    choose_restore_program,
    installed,
    program_problem,
    run_program,
    split_password,
)
from shopbot.db.pool import connect, describe_dsn
from shopbot.db.queries import queries
from shopbot.db.server import SHOP_DATABASE, embedded_data_dir, open_database_server, with_database

ARCHIVE_FIELD = re.compile(
    r"^;\s+(Archive created at|dbname:|Dumped from database version:|"
    r"Dumped by pg_dump version:)\s*(.*)$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class ServerInfo:
    """The server a backup or restore talks to, and who else uses the database."""

    major: int
    version: str
    other_sessions: list[str]


@dataclass(frozen=True)
class BackupInfo:
    """What a backup file's header says."""

    path: Path
    created: str
    database: str
    server_version: str
    server_major: int
    dumped_by_major: int


@dataclass(frozen=True)
class BackupDone:
    """A finished backup: where it went, how big it is, and of what."""

    output: str
    size: int | None
    database: str
    server_version: str


# --- the database ----------------------------------------------------------------------------------


async def inspect_server(dsn: str, timeout: float) -> ServerInfo:
    """The server's version and the other sessions on the database, failing in one line when unreachable."""
    conn = await connect(dsn, timeout)
    try:
        major = conn.get_server_version().major
        version = conn.get_settings().server_version.split(" ")[0]  # "15.20 (Debian 15.20-0+deb12u1)"
        sessions = await queries.backup.other_sessions(conn)
    finally:
        await conn.close()
    others = [f"{row['sessions']} {row['application']}" for row in sessions]
    return ServerInfo(major, version, others)


def shop_holding(data_dir: Path) -> int | None:
    """The PID of the shopbot process that holds the embedded data dir (0 if unknown), or None when none does."""
    try:
        fd = os.open(data_dir / "shopbot.lock", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"embedded PostgreSQL data dir {data_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(holder) if holder.isdigit() else 0
        return None  # closing the fd below drops the shared lock at once
    finally:
        os.close(fd)


def running_shop_dsn(data_dir: Path, holder: int) -> str:
    """The DSN of the shop's database on the embedded server a running shop started."""
    pgdata = data_dir / "pgdata"
    info = read_postmaster_pid(pgdata)
    if info is None or info.status != "ready" or not is_our_postmaster(info.pid, pgdata):
        raise BackupError(
            f"the embedded PostgreSQL in {data_dir} belongs to a running shopbot (pid {holder}) "
            "but is not ready; retry in a moment"
        )
    return with_database(socket_dsn(info.socket_dir, info.port), SHOP_DATABASE)


@contextlib.asynccontextmanager
async def open_backup_source(config: DatabaseConfig) -> AsyncIterator[str]:
    """The configured database's DSN: the running shop's embedded server, or the server `serve` would use."""
    if not config.url:
        data_dir = embedded_data_dir(config)
        try:
            exists = (data_dir / "pgdata" / "PG_VERSION").exists()
        except PermissionError:
            raise BackupError(
                f"embedded PostgreSQL data dir {data_dir}: permission denied (run this as the user "
                "shopbot runs as, or as root)"
            ) from None
        if not exists:
            raise BackupError(f"no embedded database in {data_dir} (database.embedded_dir): nothing to back up")
        holder = shop_holding(data_dir)
        if holder is not None:
            yield running_shop_dsn(data_dir, holder)
            return
    async with open_database_server(config) as dsn:
        yield dsn


# --- backup ----------------------------------------------------------------------------------------


def default_output(now: datetime | None = None) -> Path:
    """`shopbot-YYYYMMDD-HHMMSS.dump` (UTC) in the working directory."""
    return Path(f"shopbot-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}.dump")


async def backup_database(config: Config, output: str | None) -> BackupDone:
    """`shopbot backup`: a pg_dump custom-format archive of the configured database into `output` ("-": stdout)."""
    async with open_backup_source(config.database) as dsn:
        server = await inspect_server(dsn, config.database.connect_timeout)
        program = choose_dump_program(server.major)
        target = split_password(dsn, describe_target(config.database))
        return await anyio.to_thread.run_sync(dump, program, target, output or str(default_output()), server)


def dump(program: PgProgram, target: Target, output: str, server: ServerInfo) -> BackupDone:
    """Run pg_dump into a private partial file and rename it into place only once complete."""
    args = ["--format=custom", "--no-password", f"--dbname={target.uri}"]
    if output == "-":
        sys.stdout.flush()
        result = run_program(program, args, target, stdout=sys.stdout.fileno())
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {target.redact(program_problem(result.stderr))}")
        return BackupDone("-", None, target.described, server.version)
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial")
    try:
        # The backup holds everything (balances, cookies): only its owner may read it, from the first byte.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    except OSError as exc:
        raise BackupError(f"{path}: cannot be written ({exc.strerror})") from None
    try:
        result = run_program(program, [*args, f"--file={partial}"], target)
        if result.returncode != 0:
            raise BackupError(f"pg_dump failed: {target.redact(program_problem(result.stderr))}")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupDone(str(path), path.stat().st_size, target.described, server.version)


# --- restore ---------------------------------------------------------------------------------------


def inspect_backup(path: Path) -> BackupInfo:
    """Read a backup's header, refusing anything that is not a pg_dump custom-format archive."""
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise BackupError(f"{path}: cannot be read ({exc.strerror})") from None
    # The newest pg_restore reads every older archive format.
    newest = max(installed("pg_restore"), key=lambda program: program.major)
    result = run_program(newest, ["--list", str(path)], None)
    if result.returncode != 0:
        raise BackupError(
            f"{path}: not a backup made by `shopbot backup` (a pg_dump custom-format archive): "
            f"{program_problem(result.stderr)}"
        )
    fields = {name: value.strip() for name, value in ARCHIVE_FIELD.findall(result.stdout)}
    server_version = fields.get("Dumped from database version:", "")
    dumped_by = fields.get("Dumped by pg_dump version:", "")
    return BackupInfo(
        path,
        fields.get("Archive created at", "unknown"),
        fields.get("dbname:", "unknown"),
        server_version.split(" ")[0] or "unknown",
        leading_number(server_version),
        leading_number(dumped_by),
    )


@contextlib.contextmanager
def spooled_backup(name: Path) -> Iterator[Path]:
    """The backup to restore: the file itself, or standard input ("-") spooled to a private temporary file.

    pg_restore reads an archive twice (its header, then the restore), which a pipe cannot give it.
    """
    if str(name) != "-":
        yield name
        return
    fd, spooled = tempfile.mkstemp(prefix="shopbot-restore-", suffix=".dump")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        yield Path(spooled)
    finally:
        os.unlink(spooled)


def leading_number(text: str) -> int:
    match = re.match(r"\d+", text)
    return int(match.group()) if match else 0


def describe_target(config: DatabaseConfig) -> str:
    """The database a restore would replace, in words, without starting or connecting to anything."""
    if config.url:
        return f"database {describe_dsn(config.url.reveal())}"
    return f"the embedded database in {embedded_data_dir(config)}"


async def restore_database(config: Config, backup: BackupInfo) -> str:
    """`shopbot restore`: replace the configured database's contents with the backup, in one transaction."""
    if not config.database.url:
        data_dir = embedded_data_dir(config.database)
        holder = shop_holding(data_dir)
        if holder is not None:
            raise BackupError(
                f"the embedded database in {data_dir} is in use by a running shopbot (pid {holder}): "
                "stop it before restoring"
            )
    async with open_database_server(config.database) as dsn:
        server = await inspect_server(dsn, config.database.connect_timeout)
        target = split_password(dsn, describe_target(config.database))
        if server.other_sessions:
            raise BackupError(
                f"{target.described} is in use ({', '.join(server.other_sessions)} "
                "session(s)): stop shopbot and anything else using it before restoring"
            )
        program = choose_restore_program(backup.path, backup.dumped_by_major, server.major)
        args = [
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={target.uri}",
            str(backup.path),
        ]
        result = await anyio.to_thread.run_sync(run_program, program, args, target)
    if result.returncode != 0:
        hint = ""
        if backup.server_major > server.major:
            hint = (
                f" (the backup is of PostgreSQL {backup.server_version} and the database runs "
                f"{server.version}: restore into PostgreSQL {backup.server_major} or newer)"
            )
        raise BackupError(f"restore failed and changed nothing: {target.redact(program_problem(result.stderr))}{hint}")
    return target.described
