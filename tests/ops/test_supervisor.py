"""Supervision: crashed services come back, a crash loop stops the process, a bad boot fails fast."""

from __future__ import annotations

from functools import partial

import anyio
import pytest
from anyio.abc import TaskStatus

from shopbot.app.supervisor import ServiceStartError, Supervisor, backoff_delay
from shopbot.config.schema import SupervisorConfig
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics

FAST = SupervisorConfig(max_restarts=3, restart_window=10, backoff_initial=0.01, backoff_max=0.05)


async def steady(lifecycle: Lifecycle, ticks: list[int], *, task_status: TaskStatus[None]) -> None:
    task_status.started()
    while not lifecycle.stopping.is_set():
        ticks.append(1)
        with anyio.move_on_after(0.01):
            await lifecycle.stopping.wait()


async def crash_after_start(
    lifecycle: Lifecycle, runs: list[int], crashes: int, *, task_status: TaskStatus[str]
) -> None:
    runs.append(1)
    task_status.started("up")
    await anyio.sleep(0.01)
    if len(runs) <= crashes:
        raise RuntimeError("boom")
    await lifecycle.stopping.wait()


def crashes(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value("shopbot_service_crashes_total", {"service": name}) or 0.0


def restarts(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value("shopbot_service_restarts_total", {"service": name}) or 0.0


async def test_crashed_service_restarts_while_others_keep_running() -> None:
    lifecycle, metrics = Lifecycle(), Metrics()
    runs: list[int] = []
    ticks: list[int] = []
    async with anyio.create_task_group() as group:
        supervisor = Supervisor(FAST, lifecycle, metrics, group)
        await supervisor.start("steady", partial(steady, lifecycle, ticks))
        assert await supervisor.start("flaky", partial(crash_after_start, lifecycle, runs, 2)) == "up"
        with anyio.fail_after(5):
            while len(runs) < 3:
                await anyio.sleep(0.01)
        ticks_before = len(ticks)
        await anyio.sleep(0.05)
        assert len(ticks) > ticks_before, "the steady service stopped while the other restarted"
        assert supervisor.services == {"steady": "running", "flaky": "running"}
        lifecycle.request_stop("test over")
    assert crashes(metrics, "flaky") == 2
    assert restarts(metrics, "flaky") == 2
    assert lifecycle.exit_code == 0
    assert supervisor.services == {"steady": "stopped", "flaky": "stopped"}


async def test_crash_loop_stops_the_whole_process_with_exit_code_1() -> None:
    lifecycle, metrics = Lifecycle(), Metrics()
    ticks: list[int] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            supervisor = Supervisor(FAST, lifecycle, metrics, group)
            await supervisor.start("steady", partial(steady, lifecycle, ticks))
            await supervisor.start("doomed", partial(crash_after_start, lifecycle, [], 1000))
            await lifecycle.stopping.wait()
    assert lifecycle.exit_code == 1
    assert "doomed" in lifecycle.reason
    assert crashes(metrics, "doomed") == FAST.max_restarts + 1
    assert supervisor.services["doomed"] == "failed"
    assert supervisor.services["steady"] == "stopped"


async def test_failure_before_started_fails_the_boot() -> None:
    async def broken(*, task_status: TaskStatus[None]) -> None:
        raise ConnectionRefusedError("no route to the thing")

    lifecycle, metrics = Lifecycle(), Metrics()
    with pytest.raises((ServiceStartError, BaseExceptionGroup)) as caught:
        async with anyio.create_task_group() as group:
            await Supervisor(FAST, lifecycle, metrics, group).start("broken", broken)
    error = caught.value
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, ServiceStartError)
    assert str(error) == "broken could not start: ConnectionRefusedError: no route to the thing"
    assert crashes(metrics, "broken") == 0


async def test_service_returning_on_its_own_counts_as_a_crash() -> None:
    lifecycle, metrics = Lifecycle(), Metrics()
    calls: list[int] = []

    async def quits(*, task_status: TaskStatus[None]) -> None:
        calls.append(1)
        task_status.started()
        if len(calls) > 1:
            await lifecycle.stopping.wait()

    async with anyio.create_task_group() as group:
        await Supervisor(FAST, lifecycle, metrics, group).start("quitter", quits)
        with anyio.fail_after(5):
            while len(calls) < 2:
                await anyio.sleep(0.01)
        lifecycle.request_stop("test over")
    assert crashes(metrics, "quitter") == 1


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    config = SupervisorConfig(backoff_initial=1, backoff_max=30)
    assert [backoff_delay(n, config, rand=lambda: 1.0) for n in (1, 2, 3, 6, 10)] == [1, 2, 4, 30, 30]
    assert [backoff_delay(n, config, rand=lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1, 2]
