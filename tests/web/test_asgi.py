"""serve_asgi: hypercorn as a startable anyio task that only ever stops through its shutdown trigger."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest
from hypercorn.utils import LifespanFailureError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shopbot.errors import PortInUseError
from shopbot.web.asgi import serve_asgi


class Probe:
    """A tiny app that remembers whether its lifespan shut down (proof hypercorn was stopped, not killed)."""

    def __init__(self) -> None:
        self.shut_down = False
        self.app = Starlette(routes=[Route("/ping", self.ping), Route("/slow", self.slow)], lifespan=self.lifespan)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        self.shut_down = True

    async def ping(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("pong")

    async def slow(self, request: Request) -> PlainTextResponse:
        await anyio.sleep(0.3)
        return PlainTextResponse("done")


async def test_started_port_serves_at_once_and_trigger_stops_it() -> None:
    probe = Probe()
    stop = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            port = await group.start(
                lambda task_status: serve_asgi(
                    probe.app, host="127.0.0.1", port=0, shutdown_trigger=stop.wait, task_status=task_status
                )
            )
            assert port > 0
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"http://127.0.0.1:{port}/ping")
            assert response.text == "pong"
            stop.set()
    assert probe.shut_down
    # The port is released once serve_asgi returns.
    async with anyio.create_task_group() as group:
        await group.start(
            lambda task_status: serve_asgi(probe.app, host="127.0.0.1", port=port, task_status=task_status)
        )
        group.cancel_scope.cancel()


async def test_port_in_use_is_one_clear_line() -> None:
    probe = Probe()
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_asgi(probe.app, host="127.0.0.1", port=0, task_status=task_status)
        )
        with pytest.raises(PortInUseError) as caught:
            await serve_asgi(probe.app, host="127.0.0.1", port=port)
        group.cancel_scope.cancel()
    assert str(caught.value) == f"port {port} on 127.0.0.1 is already in use"


async def test_cancelling_the_scope_drains_in_flight_requests_and_runs_lifespan_shutdown() -> None:
    probe = Probe()
    server_scope = anyio.CancelScope()
    responses: list[httpx.Response] = []

    async def run_server(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        with server_scope:
            await serve_asgi(probe.app, host="127.0.0.1", port=0, graceful_seconds=2.0, task_status=task_status)

    async with httpx.AsyncClient(trust_env=False) as client, anyio.create_task_group() as group:
        port = await group.start(run_server)

        async def fetch_slow() -> None:
            responses.append(await client.get(f"http://127.0.0.1:{port}/slow"))

        group.start_soon(fetch_slow)
        await anyio.sleep(0.1)  # the request is in flight when the server's scope is cancelled
        server_scope.cancel()
    assert [response.text for response in responses] == ["done"]
    assert probe.shut_down


async def test_banner_goes_to_hypercorn_error_and_no_access_lines(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    caplog.set_level(logging.INFO)
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_asgi(probe.app, host="127.0.0.1", port=0, task_status=task_status)
        )
        async with httpx.AsyncClient(trust_env=False) as client:
            await client.get(f"http://127.0.0.1:{port}/ping")
        group.cancel_scope.cancel()
    banners = [r for r in caplog.records if r.name == "hypercorn.error" and "Running on" in r.getMessage()]
    assert [r.levelno for r in banners] == [logging.INFO]
    assert not [r for r in caplog.records if r.name == "hypercorn.access"]


async def test_a_failing_app_startup_is_raised_unwrapped_and_frees_the_port() -> None:
    @asynccontextmanager
    async def broken_lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield

    probe = Probe()
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_asgi(probe.app, host="127.0.0.1", port=0, task_status=task_status)
        )
        group.cancel_scope.cancel()
    async with anyio.create_task_group() as group:
        with pytest.raises(LifespanFailureError, match="database unreachable"):
            await group.start(
                lambda task_status: serve_asgi(
                    Starlette(lifespan=broken_lifespan), host="127.0.0.1", port=port, task_status=task_status
                )
            )
    # Nothing holds the port afterwards: a healthy app binds it again.
    async with anyio.create_task_group() as group:
        await group.start(
            lambda task_status: serve_asgi(probe.app, host="127.0.0.1", port=port, task_status=task_status)
        )
        group.cancel_scope.cancel()
