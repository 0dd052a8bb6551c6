"""The processes a scenario runs and watches: `shopbot serve`, the ceilings, the emulators' own processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.common import HELEKET_KEY, HUGE, MERCHANT, PYTHON, ROOT, TOKEN, BenchFailure, check

# Anything in the caller's environment that shopbot would read as configuration.
_SHOPBOT_ENV = (
    "SHOPBOT_",
    "TELEGRAM_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
    "MERCHANT_UUID",
    "API_KEY",
    "FRAGMENT_",
    "LOG_LEVEL",
    "RATE_LIMIT_",
    "CACHE_TTL_",
    "CIRCUIT_BREAKER_",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SHOPBOT_ENV)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (VmRSS), without its children."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchFailure(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time a process has used so far (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process whose output goes to a log file under the run's folder."""

    def __init__(self, name: str, args: list[str], folder: Path, *, cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = folder / f"{name}.{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            args, cwd=cwd or ROOT, env=clean_env(), stdout=self._log, stderr=subprocess.STDOUT, text=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_output(self, marker: str, timeout: float) -> str:
        """The first output line containing marker."""
        with anyio.move_on_after(timeout):
            while True:
                for line in self.output.splitlines():
                    if marker in line:
                        return line
                if not self.alive():
                    break
                await anyio.sleep(0.02)
        raise BenchFailure(
            f"{self.name} did not say {marker!r} within {timeout} s (exit {self.process.poll()}):\n{tail(self.output)}"
        )

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not go within timeout; the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(timeout):
                while self.alive():
                    await anyio.sleep(0.05)
        if self.alive():
            self.process.kill()
            self.process.wait(10)
        self._log.close()
        return self.process.returncode

    def problems(self) -> list[str]:
        """Log lines at ERROR or worse, and tracebacks."""
        found = []
        for line in self.output.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line:
                    found.append(line)
                continue
            if isinstance(entry, dict) and entry.get("level") in ("ERROR", "CRITICAL"):
                found.append(str(entry.get("message")))
        return found


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def write_shop_config(
    folder: Path,
    *,
    telegram_port: int,
    web_port: int,
    database_url: str = "",
    embedded_dir: Path | None = None,
    heleket_base: str = "",
    fragment: dict[str, Any] | None = None,
    poll_timeout: int = 10,
) -> Path:
    """A shopbot.toml for `shopbot serve` against the bench's emulators (TOML written by hand: no writer
    in the standard library, and every value here is a plain string, number or list)."""
    web = f"http://127.0.0.1:{web_port}"
    sections: dict[str, dict[str, Any]] = {
        "telegram": {"token": TOKEN, "api_base": f"http://127.0.0.1:{telegram_port}", "poll_timeout": poll_timeout},
        "database": {
            "url": database_url,
            "embedded_dir": str(embedded_dir or folder / "pg"),
            "pool_min": 2,
            "pool_max": 10,
        },
        "web": {"host": "127.0.0.1", "port": web_port, "public_url": web},
        "metrics": {"port": 0},  # a free port: bench shops never clash with each other or a running shop
        "log": {"format": "json", "level": "INFO"},
        "shutdown": {"grace_seconds": 10},
        "rate_limit": {
            "messages_per_minute": HUGE,
            "operations_per_minute": HUGE,
            "payments_per_minute": HUGE,
            "global_messages_per_minute": HUGE,
            "webhook_per_minute": HUGE,
            "burst": HUGE,
        },
    }
    if heleket_base:
        # Loopback webhooks must pass the address check; the reconciler looks once at start, then sleeps.
        sections["heleket"] = {
            "base_url": heleket_base,
            "merchant_uuid": MERCHANT,
            "api_key": HELEKET_KEY,
            "allowed_ips": [],
            "poll_seconds": 3600,
        }
    if fragment:
        sections["fragment"] = fragment
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in keys.items())
    path = folder / f"shopbot.{time.monotonic_ns()}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class ShopProcess(Child):
    """`shopbot serve` as an operator runs it."""

    def __init__(self, config: Path, folder: Path, web_port: int) -> None:
        super().__init__("shopbot-serve", [PYTHON, "-m", "shopbot.cli", "--config", str(config), "serve"], folder)
        self.web_port = web_port

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds from spawn until the shop logged that every service started."""
        await self.wait_output("shop ready: web on http://", timeout)
        return time.perf_counter() - self.started

    async def wait_healthy(self, timeout: float = 90.0) -> float:
        """Seconds from spawn until /health/detailed answered 200 (polled every 10 ms)."""
        url = f"http://127.0.0.1:{self.web_port}/health/detailed"
        status = None
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            with anyio.move_on_after(timeout):
                while self.alive():
                    try:
                        status = (await http.get(url)).status_code
                        if status == 200:
                            return time.perf_counter() - self.started
                    except httpx.HTTPError:
                        pass
                    await anyio.sleep(0.01)
        raise BenchFailure(
            f"/health/detailed did not answer 200 within {timeout} s (last answer {status}, "
            f"exit {self.process.poll()}):\n{tail(self.output)}"
        )

    async def stop_cleanly(self) -> None:
        code = await self.stop(timeout=20)
        check(code == 0, f"shopbot serve exited with {code} on SIGTERM:\n{tail(self.output)}")
