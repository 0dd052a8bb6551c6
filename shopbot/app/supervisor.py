"""Erlang-style supervision of the shop's long-running services inside one anyio task group.

A service is a startable coroutine function: `async def run(*, task_status)`. It calls
`task_status.started()` once it serves, and returns when the shop's `Lifecycle.stopping` is set.
- A failure before `started()` fails the boot at once: a shop that never came up should not loop.
- A crash afterwards is logged, counted, and followed by a restart after an exponential backoff
  with jitter, while the other services keep running.
- More crashes than `max_restarts` within `restart_window` seconds stop the whole process with
  exit code 1 (restart intensity), so systemd or the container runtime takes over.

An optional service (one not needed to take money or deliver: the wallet watch, broadcasts, the
cookie refresher, the repricer) never stops the shop. If it fails to start, or crashes more than
`max_restarts` times within `restart_window` seconds of its own, it is turned off: its state says
"off" with the reason (for /health/detailed), `shopbot_service_up{service}` reads 0, and the admins
get one alert naming the reason. Its crashes before that are restarted exactly like any other's, but
they count in its own window, not in the one that stops the shop.

A crash while the database does not answer (PostgreSQL restarting, say) is the outage's, not the
service's: it is logged as a warning, not counted, and the service is restarted once the database
answers again, so a database restart never stops the shop or turns a service off.
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
from shopbot.notify import Alert

log = logging.getLogger(__name__)
ServiceFn = Callable[..., Awaitable[None]]
ALERT_SECONDS = 15.0
DATABASE_WAIT_MAX = 5.0  # the longest pause between two looks at a database that does not answer
DatabaseUp = Callable[[], Awaitable[bool]]  # False while the database does not answer (db.pool.database_answers)


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
    ceiling = min(config.backoff_max, config.backoff_initial * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2 + rand() * ceiling / 2


class Supervisor:
    """Starts services in a task group it is given and restarts those that crash."""

    def __init__(
        self,
        config: SupervisorConfig,
        lifecycle: Lifecycle,
        metrics: Metrics,
        group: TaskGroup,
        *,
        alert: Alert | None = None,
        database_up: DatabaseUp | None = None,
    ) -> None:
        self.config = config
        self.database_up = database_up
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.group = group
        self.alert = alert
        self.crash_times: deque[float] = deque()
        self.optional_crash_times: dict[str, deque[float]] = {}
        self.services: dict[str, str] = {}
        self.reasons: dict[str, str] = {}  # why an optional service is off

    def _set_state(self, name: str, state: str) -> None:
        self.services[name] = state
        self.metrics.service_up.labels(name).set(1 if state == "running" else 0)

    def report(self) -> dict[str, tuple[str, str]]:
        """Each service's state and, for one that is off, why: what /health/detailed lists."""
        return {name: (state, self.reasons.get(name, "")) for name, state in sorted(self.services.items())}

    async def start(self, name: str, service: ServiceFn, *, optional: bool = False) -> Any:
        """Start a service; return what it reported when started (a port, say), or raise.

        An `optional` service that fails to start does not raise: it is turned off and reported, and
        None is returned, so the shop boots without it."""
        # Exported from the start at zero, so a dashboard tells "never crashed" from "not running".
        self.metrics.service_restarts.labels(name)
        self.metrics.service_crashes.labels(name)
        self.metrics.service_up.labels(name)
        if optional:
            self.optional_crash_times[name] = deque()
        return await self.group.start(self._supervise, name, service, optional, name=f"supervise:{name}")

    async def _supervise(self, name: str, service: ServiceFn, optional: bool, *, task_status: TaskStatus[Any]) -> None:
        attempt = 0
        booted = False  # started once: what `start` waits for has been reported
        while True:
            try:
                async with anyio.create_task_group() as group:
                    value = await group.start(self._run_once, service, name=name)
                    self._set_state(name, "running")
                    if not booted:
                        booted = True
                        task_status.started(value)
                if self.lifecycle.stopping.is_set():
                    self._set_state(name, "stopped")
                    return
                raise ServiceExitedError(f"{name} exited without being asked to stop")
            except Exception as exc:
                if not booted:
                    if optional:
                        task_status.started(None)
                        await self._turn_off(name, f"it could not start: {describe(exc)}")
                        return
                    self._set_state(name, "failed")
                    raise ServiceStartError(name, exc) from None
                if self.lifecycle.stopping.is_set():
                    log.warning("%s failed while stopping: %s", name, describe(exc))
                    self._set_state(name, "stopped")
                    return
                if await self._outlived_outage(name, exc):
                    if self.lifecycle.stopping.is_set():
                        self._set_state(name, "stopped")
                        return
                    continue
                attempt += 1
                if optional:
                    if not self._record_optional_crash(name, exc):
                        await self._turn_off(
                            name,
                            f"it crashed more than {self.config.max_restarts} times within "
                            f"{self.config.restart_window:g} s (last: {describe(exc)})",
                        )
                        return
                elif not self._record_crash(name, exc):
                    return
                delay = backoff_delay(attempt, self.config)
                self._set_state(name, "restarting")
                log.info("restarting %s in %.1f s", name, delay)
                await self.lifecycle.sleep(delay)
                if self.lifecycle.stopping.is_set():
                    self.services[name] = "stopped"
                    return
                self.metrics.service_restarts.labels(name).inc()

    async def _database_answers(self) -> bool:
        return self.database_up is None or await self.database_up()

    async def _outlived_outage(self, name: str, exc: BaseException) -> bool:
        """If the database does not answer, the crash is the outage's: wait until it answers again, then True
        (the service is restarted without counting the crash). False when the database is fine."""
        if await self._database_answers():
            return False
        self._set_state(name, "restarting")
        log.warning(
            "%s stopped while the database does not answer (%s); restarting it once it does", name, describe(exc)
        )
        delay = self.config.backoff_initial
        while not self.lifecycle.stopping.is_set() and not await self._database_answers():
            await self.lifecycle.sleep(delay)
            delay = min(delay * 2, DATABASE_WAIT_MAX)
        if not self.lifecycle.stopping.is_set():
            log.info("the database answers again; restarting %s", name)
            self.metrics.service_restarts.labels(name).inc()
        return True

    @staticmethod
    async def _run_once(service: ServiceFn, *, task_status: TaskStatus[Any]) -> None:
        await service(task_status=task_status)

    def _record_optional_crash(self, name: str, exc: BaseException) -> bool:
        """Count an optional service's crash in its own window; False when it must be turned off."""
        self.metrics.service_crashes.labels(name).inc()
        log.error("%s crashed: %s", name, describe(exc), exc_info=exc)
        return _within_intensity(self.optional_crash_times[name], self.config)

    async def _turn_off(self, name: str, reason: str) -> None:
        """An optional service stays off until shopbot restarts: reported once, the rest of the shop runs."""
        self._set_state(name, "off")
        self.reasons[name] = reason
        log.error("%s is off: %s; the rest of the shop keeps running", name, reason)
        if self.alert is None:
            return
        try:
            with anyio.fail_after(ALERT_SECONDS):
                await self.alert(
                    f"⚠️ {name} is off: {reason}. The rest of the shop keeps selling; "
                    f"restart shopbot once this is fixed."
                )
        except Exception as exc:
            log.warning("could not alert the admins that %s is off: %s", name, describe(exc))

    def _record_crash(self, name: str, exc: BaseException) -> bool:
        """Count a crash; False when restart intensity is exceeded and the shop must stop."""
        self.metrics.service_crashes.labels(name).inc()
        log.error("%s crashed: %s", name, describe(exc), exc_info=exc)
        if not _within_intensity(self.crash_times, self.config):
            self._set_state(name, "failed")
            self.lifecycle.request_stop(
                f"{len(self.crash_times)} crashes within {self.config.restart_window:g} s "
                f"(last: {name}); giving up so the service manager can restart shopbot",
                exit_code=1,
            )
            return False
        return True


def _within_intensity(crash_times: deque[float], config: SupervisorConfig) -> bool:
    """Record a crash now; False when more than `max_restarts` fell within `restart_window` seconds."""
    now = time.monotonic()
    crash_times.append(now)
    while crash_times and now - crash_times[0] > config.restart_window:
        crash_times.popleft()
    return len(crash_times) <= config.max_restarts
