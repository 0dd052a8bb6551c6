"""Liveness and readiness.

`/health` answers without I/O: the process is alive. `/health/detailed` asks each dependency
(database, Redis when configured, Telegram's getMe) with a short timeout and reports the state of
every circuit breaker; it is 503 whenever the shop should not get traffic, draining included.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from shopbot.lifecycle import Lifecycle

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT = 3.0


class CheckResult(msgspec.Struct, omit_defaults=True):
    ok: bool
    latency_ms: float
    error: str = ""


class Readiness(msgspec.Struct):
    status: str
    ready: bool
    checks: dict[str, CheckResult]
    circuits: dict[str, str]
    facts: dict[str, str]


_encoder = msgspec.json.Encoder()


@dataclass
class HealthChecks:
    """The named readiness checks and circuit-state sources the shop registered."""

    lifecycle: Lifecycle
    checks: dict[str, Check] = field(default_factory=dict)
    circuits: dict[str, Callable[[], str]] = field(default_factory=dict)
    facts: dict[str, Callable[[], str | None]] = field(default_factory=dict)

    async def run_check(self, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await check()
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a result, not an error
            error = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return CheckResult(False, round((time.perf_counter() - started) * 1000, 2), error)
        return CheckResult(True, round((time.perf_counter() - started) * 1000, 2))

    async def readiness(self) -> Readiness:
        """Run every check concurrently and combine them with the run state."""
        results: dict[str, CheckResult] = {}

        async def one(name: str, check: Check) -> None:
            results[name] = await self.run_check(check)

        async with anyio.create_task_group() as group:
            for name, check in self.checks.items():
                group.start_soon(one, name, check)
        ready = self.lifecycle.ready and all(r.ok for r in results.values())
        status = "ok" if ready else ("stopping" if self.lifecycle.stopping.is_set() else "unavailable")
        circuits = {name: state() for name, state in self.circuits.items()}
        facts = {name: value for name, read in self.facts.items() if (value := read()) is not None}
        return Readiness(status, ready, dict(sorted(results.items())), circuits, facts)


async def liveness(_: Request) -> Response:
    """The process is up and its event loop answers."""
    return Response(b'{"status":"ok"}', media_type="application/json")


def detailed_endpoint(health: HealthChecks) -> Callable[[Request], Awaitable[Response]]:
    async def detailed(_: Request) -> Response:
        report = await health.readiness()
        return Response(_encoder.encode(report), status_code=200 if report.ready else 503,
                        media_type="application/json")

    return detailed
