"""Liveness and readiness.

`/health` answers without I/O: the process is alive. `/health/detailed` asks each dependency
(database, Redis when configured, Telegram's getMe) with a short timeout and reports the state of
every circuit breaker and every service (an optional one that is off says why); it is 503 whenever
the shop should not get traffic, draining included. An open circuit, or an optional service that is
off, does not make the shop unready: it still serves, and tells users what is unavailable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from shopbot.lifecycle import Lifecycle

log = logging.getLogger(__name__)
Check = Callable[[], Awaitable[object]]
CircuitState = Callable[[], Awaitable[str]]
CHECK_TIMEOUT = 3.0


class CheckResult(msgspec.Struct, omit_defaults=True):
    ok: bool
    latency_ms: float
    error: str = ""


class ServiceReport(msgspec.Struct, omit_defaults=True):
    state: str
    reason: str = ""


class Readiness(msgspec.Struct):
    status: str
    ready: bool
    checks: dict[str, CheckResult]
    circuits: dict[str, str]
    facts: dict[str, str]
    services: dict[str, ServiceReport] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()


@dataclass
class HealthChecks:
    """The named readiness checks and circuit-state sources the shop registered."""

    lifecycle: Lifecycle
    checks: dict[str, Check] = field(default_factory=dict)
    circuits: dict[str, CircuitState] = field(default_factory=dict)
    facts: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    # Each service's (state, reason); an optional service that is off never makes the shop unready.
    services: Callable[[], dict[str, tuple[str, str]]] = dict

    async def run_check(self, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await check()
        except Exception as exc:
            error = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return CheckResult(False, round((time.perf_counter() - started) * 1000, 2), error)
        return CheckResult(True, round((time.perf_counter() - started) * 1000, 2))

    @staticmethod
    async def read_circuit(state: CircuitState) -> str:
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                return await state()
        except Exception:
            log.warning("could not read a circuit's state", exc_info=True)
            return "unknown"

    async def readiness(self) -> Readiness:
        """Run every check concurrently and combine them with the run state."""
        results: dict[str, CheckResult] = {}
        circuits: dict[str, str] = {}

        async def one(name: str, check: Check) -> None:
            results[name] = await self.run_check(check)

        async def circuit(name: str, state: CircuitState) -> None:
            circuits[name] = await self.read_circuit(state)

        async with anyio.create_task_group() as group:
            for name, check in self.checks.items():
                group.start_soon(one, name, check)
            for name, state in self.circuits.items():
                group.start_soon(circuit, name, state)
        ready = self.lifecycle.ready and all(r.ok for r in results.values())
        status = "ok" if ready else ("stopping" if self.lifecycle.stopping.is_set() else "unavailable")
        circuits = dict(sorted(circuits.items()))
        facts = {name: value for name, read in self.facts.items() if (value := read()) is not None}
        services = {name: ServiceReport(state, reason) for name, (state, reason) in self.services().items()}
        return Readiness(status, ready, dict(sorted(results.items())), circuits, facts, services)


async def liveness(_: Request) -> Response:
    """The process is up and its event loop answers."""
    return Response(b'{"status":"ok"}', media_type="application/json")


def detailed_endpoint(health: HealthChecks) -> Callable[[Request], Awaitable[Response]]:
    async def detailed(_: Request) -> Response:
        report = await health.readiness()
        return Response(
            _encoder.encode(report), status_code=200 if report.ready else 503, media_type="application/json"
        )

    return detailed
