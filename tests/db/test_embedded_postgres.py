"""The embedded PostgreSQL server: first start, restart, adoption after a SIGKILL, stale pid files, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import anyio
import asyncpg
import pytest

from shopbot.db.embedded import EmbeddedPostgres, EmbeddedPostgresError, open_embedded_postgres, read_postmaster_pid

# Starts a server in a child process and then sleeps, so the test can SIGKILL its owner.
OWNER_SCRIPT = """
import sys, time
from pathlib import Path
from shopbot.db.embedded import EmbeddedPostgres
print(EmbeddedPostgres(Path(sys.argv[1])).start(), flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; whatever a test leaves running on it is shut down afterwards."""
    path = tmp_path / "var" / "postgres"
    yield path
    for pid in postgres_processes(path):
        os.kill(pid, signal.SIGKILL)


def postgres_processes(data_dir: Path) -> list[int]:
    """PIDs of live processes running in, or started with, the cluster under `data_dir`."""
    pgdata = str(data_dir / "pgdata")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd.startswith(pgdata) or pgdata in cmdline):
            found.append(int(entry.name))
    return found


def start_owner(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """A child process that owns a server on `data_dir`, and the DSN it printed."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    return owner, owner.stdout.readline().strip()


def start_sleeper() -> subprocess.Popen[str]:
    """An unrelated live process whose PID a stale postmaster.pid can name."""
    return subprocess.Popen(["sleep", "60"], text=True)


def sigkill(process: subprocess.Popen[str]) -> None:
    """Kill without giving the process any chance to clean up, as the OOM killer or `kill -9` would."""
    process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def fetch(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_first_start_initialises_and_serves_on_a_socket_only(data_dir: Path) -> None:
    async with open_embedded_postgres(data_dir) as dsn:
        assert await fetch(dsn, "SELECT 1") == 1
        # Never a TCP listener: the server is reachable through its unix socket alone.
        assert await fetch(dsn, "SHOW listen_addresses") == ""
        assert (data_dir / "pgdata" / "PG_VERSION").read_text().strip() == "18"
    assert postgres_processes(data_dir) == []


async def test_restart_sees_the_data_of_the_first_run(data_dir: Path) -> None:
    async with open_embedded_postgres(data_dir) as dsn:
        await fetch(dsn, "CREATE TABLE kept AS SELECT 42 AS answer")
    async with open_embedded_postgres(data_dir) as dsn:
        assert await fetch(dsn, "SELECT answer FROM kept") == 42


async def test_a_server_left_by_a_killed_owner_is_adopted(data_dir: Path) -> None:
    owner, dsn = start_owner(data_dir)
    try:
        await fetch(dsn, "CREATE TABLE kept AS SELECT 7 AS answer")
    finally:
        sigkill(owner)
    left_running = read_postmaster_pid(data_dir / "pgdata")
    assert left_running is not None and left_running.pid in postgres_processes(data_dir)

    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    try:
        assert read_postmaster_pid(data_dir / "pgdata") == left_running  # the same server, not a new one
        assert await fetch(dsn, "SELECT answer FROM kept") == 7
    finally:
        server.stop()
    assert postgres_processes(data_dir) == []


async def test_a_crashed_server_leaves_a_stale_pid_file_that_is_ignored(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    await fetch(dsn, "CREATE TABLE kept AS SELECT 9 AS answer")
    crashed = read_postmaster_pid(data_dir / "pgdata")
    assert crashed is not None
    os.kill(crashed.pid, signal.SIGKILL)
    with anyio.fail_after(10):
        while postgres_processes(data_dir):
            await anyio.sleep(0.05)
    server.stop()  # the server is gone already; stop only lets go of the data dir
    assert (data_dir / "pgdata" / "postmaster.pid").exists()

    async with open_embedded_postgres(data_dir) as dsn:
        assert await fetch(dsn, "SELECT answer FROM kept") == 9


@pytest.mark.parametrize("stranger", ["this test process", "a sleep process"])
async def test_a_pid_file_naming_an_unrelated_live_process_is_stale(data_dir: Path, stranger: str) -> None:
    async with open_embedded_postgres(data_dir):
        pass
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    sleeper = start_sleeper()
    try:
        pid = os.getpid() if stranger == "this test process" else sleeper.pid
        pid_file.write_text(f"{pid}\n{data_dir / 'pgdata'}\n1700000000\n5432\n{data_dir}\n\n  0 0\nready\n")
        async with open_embedded_postgres(data_dir) as dsn:
            assert await fetch(dsn, "SELECT 1") == 1
            started = read_postmaster_pid(data_dir / "pgdata")
            assert started is not None and started.pid != pid
        assert sleeper.poll() is None  # the stranger was left alone
    finally:
        sigkill(sleeper)


async def test_stop_runs_when_the_block_is_cancelled(data_dir: Path) -> None:
    with anyio.CancelScope() as scope:
        async with open_embedded_postgres(data_dir) as dsn:
            assert await fetch(dsn, "SELECT 1") == 1
            scope.cancel()
            await anyio.sleep(10)
    assert scope.cancelled_caught
    assert postgres_processes(data_dir) == []
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_a_second_owner_of_the_same_data_dir_is_refused(data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir)
    first.start()
    try:
        with pytest.raises(EmbeddedPostgresError, match="already used by another shopbot process"):
            EmbeddedPostgres(data_dir).start()
    finally:
        first.stop()
    assert postgres_processes(data_dir) == []


def test_a_failed_start_is_reported_in_one_line_with_the_servers_reason(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    server.start()
    server.stop()
    with (data_dir / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'lots'\n")
    with pytest.raises(EmbeddedPostgresError) as raised:
        EmbeddedPostgres(data_dir).start()
    message = str(raised.value)
    assert message.startswith("embedded PostgreSQL could not start: ")
    assert "shared_buffers" in message and "\n" not in message
    assert postgres_processes(data_dir) == []


async def test_a_data_dir_too_deep_for_a_socket_path_gets_a_private_socket_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / ("deep" * 30) / "postgres"
    async with open_embedded_postgres(data_dir) as dsn:
        socket_dir = Path(unquote(dsn.partition("host=")[2].partition("&")[0]))
        assert socket_dir.parent == Path(tempfile.gettempdir()) and socket_dir.name.startswith("shopbot-pg-")
        assert await fetch(dsn, "SELECT 1") == 1
    assert postgres_processes(data_dir) == []
    socket_dir.rmdir()  # empty once the server is down; it lives outside tmp_path


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs a separate OS user")
def test_as_root_the_server_runs_as_its_own_user_behind_a_private_parent(tmp_path: Path) -> None:
    parent = tmp_path / "private"
    parent.mkdir(mode=0o700)
    data_dir = parent / "postgres"
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        pid = read_postmaster_pid(data_dir / "pgdata")
        assert pid is not None
        owner = Path(f"/proc/{pid.pid}").stat().st_uid
        assert owner != 0 and owner == (data_dir / "pgdata").stat().st_uid
        # The server's user got traverse through an ACL entry; everyone else still cannot enter.
        assert parent.stat().st_mode & 0o007 == 0
    finally:
        server.stop()
    assert postgres_processes(data_dir) == []
