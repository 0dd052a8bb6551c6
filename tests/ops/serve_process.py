"""Run the real `shopbot serve` as a child process, the way an operator or systemd does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[2]
SHOPBOT = [sys.executable, "-m", "shopbot.cli"]
# Anything in the caller's environment that shopbot would read as configuration.
_OURS = (
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


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """A short shopbot command, to completion."""
    return subprocess.run([*SHOPBOT, *args], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=60)


class ServeProcess:
    """`shopbot serve` with its JSON log lines collected from stderr."""

    def __init__(self, config_path: Path, **env: str) -> None:
        self.log_path = config_path.with_suffix(f".{time.monotonic_ns()}.log")
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*SHOPBOT, "--config", str(config_path), "serve"],
            cwd=config_path.parent,
            env=clean_env(**env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def lines(self) -> list[dict[str, object]]:
        entries = []
        for line in self.output.splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"message": line, "level": "RAW"})
        return entries

    async def wait_ready(self, timeout: float = 60) -> int:
        """The web port, once the shop logged that it is ready."""
        with anyio.fail_after(timeout):
            while True:
                for entry in self.lines():
                    message = str(entry.get("message", ""))
                    if message.startswith("shop ready: web on http://"):
                        return int(message.rsplit(":", 1)[1])
                if self.process.poll() is not None:
                    raise AssertionError(f"shopbot serve exited with {self.process.returncode}:\n{self.output}")
                await anyio.sleep(0.05)

    async def wait_exit(self, timeout: float) -> int:
        with anyio.fail_after(timeout):
            while self.process.poll() is None:
                await anyio.sleep(0.05)
        self._log.close()
        return self.process.returncode

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
