"""Erlang-style supervision of the shop's long-running services inside one anyio task group.

A service is a startable coroutine function: `async def run(*, task_status)`. It calls
`task_status.started()` once it serves, and returns when the shop's `Lifecycle.stopping` is set.
- A failure before `started()` fails the boot at once: a shop that never came up should not loop.
- A crash afterwards is logged, counted, and followed by a restart after an exponential backoff
  with jitter, while the other services keep running.
- More crashes than `max_restarts` within `restart_window` seconds stop the whole process with
  exit code 1 (restart intensity), so systemd or the container runtime takes over.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from shopbot.config.schema import SupervisorConfig
from shopbot.errors import ShopbotError
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
ServiceFn = Callable[..., Awaitable[None]]


class ServiceStartError(ShopbotError):
    """A service failed before it reported itself started."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self.service = name
        super().__init__(f"{name} could not start: {describe(exc)}")


class ServiceExitedError(Exception):
    """A service returned although nobody asked it to stop."""


def describe(exc: BaseException) -> str:
    """The innermost useful message of an exception (task groups wrap them in groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, ShopbotError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backoff_delay(attempt: int, config: SupervisorConfig, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff capped at backoff_max, with full jitter over its upper half."""
    ceiling = min(config.backoff_max, config.backoff_initial * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + rand() * ceiling / 2


class Supervisor:
    """Starts services in a task group it is given and restarts those that crash."""

    def __init__(self, config: SupervisorConfig, lifecycle: Lifecycle, metrics: Metrics, group: TaskGroup) -> None:
        self.config = config
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.group = group
        self.crash_times: deque[float] = deque()
        self.services: dict[str, str] = {}

    async def start(self, name: str, service: ServiceFn) -> Any:
        """Start a service; return what it reported when started (a port, say), or raise."""
        # Exported from the start at zero, so a dashboard tells "never crashed" from "not running".
        self.metrics.service_restarts.labels(name)
        self.metrics.service_crashes.labels(name)
        return await self.group.start(self._supervise, name, service, name=f"supervise:{name}")

    async def _supervise(self, name: str, service: ServiceFn, *, task_status: TaskStatus[Any]) -> None:
        attempt = 0
        while True:
            started = False
            try:
                async with anyio.create_task_group() as group:
                    value = await group.start(self._run_once, service, name=name)
                    started = True
                    self.services[name] = "running"
                    if attempt == 0:
                        task_status.started(value)
                if self.lifecycle.stopping.is_set():
                    self.services[name] = "stopped"
                    return
                raise ServiceExitedError(f"{name} exited without being asked to stop")
            except Exception as exc:  # noqa: BLE001 - operational errors of one service, never cancellation
                if attempt == 0 and not started:
                    self.services[name] = "failed"
                    raise ServiceStartError(name, exc) from None
                if self.lifecycle.stopping.is_set():
                    log.warning("%s failed while stopping: %s", name, describe(exc))
                    self.services[name] = "stopped"
                    return
                attempt += 1
                if not self._record_crash(name, exc):
                    return
                delay = backoff_delay(attempt, self.config)
                self.services[name] = "restarting"
                log.info("restarting %s in %.1f s", name, delay)
                with anyio.move_on_after(delay):
                    await self.lifecycle.stopping.wait()
                if self.lifecycle.stopping.is_set():
                    self.services[name] = "stopped"
                    return
                self.metrics.service_restarts.labels(name).inc()

    @staticmethod
    async def _run_once(service: ServiceFn, *, task_status: TaskStatus[Any]) -> None:
        await service(task_status=task_status)

    def _record_crash(self, name: str, exc: BaseException) -> bool:
        """Count a crash; False when restart intensity is exceeded and the shop must stop."""
        self.metrics.service_crashes.labels(name).inc()
        log.error("%s crashed: %s", name, describe(exc), exc_info=exc)
        now = time.monotonic()
        self.crash_times.append(now)
        while self.crash_times and now - self.crash_times[0] > self.config.restart_window:
            self.crash_times.popleft()
        if len(self.crash_times) > self.config.max_restarts:
            self.services[name] = "failed"
            self.lifecycle.request_stop(
                f"{len(self.crash_times)} crashes within {self.config.restart_window:g} s "
                f"(last: {name}); giving up so the service manager can restart shopbot",
                exit_code=1,
            )
            return False
        return True
