"""Serve an ASGI app on hypercorn as a startable anyio task that stops only through hypercorn's trigger."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import cast

import anyio
from anyio.abc import TaskStatus
from hypercorn.asyncio import serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from starlette.types import ASGIApp

from shopbot.config.tls import check_tls
from shopbot.errors import PortInUseError

logger = logging.getLogger(__name__)

# hypercorn drains connections for graceful_seconds and then runs the app's lifespan shutdown; this is the
# allowance for that shutdown before hypercorn is cancelled outright as a last resort.
LIFESPAN_SHUTDOWN_SECONDS = 2.0


def bind_listener(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """Bind and listen on host:port (port 0 picks a free one); a taken port raises PortInUseError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restart rebind over TIME_WAIT connections; on Linux it still refuses a second
        # listener, so "in use" keeps meaning another live server.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.bind((host, port))
        listener.listen(backlog)
        listener.setblocking(False)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port) from error
        raise
    return listener


class _ListenerConfig(Config):
    """A hypercorn Config bound to an already-listening socket, which it takes over exactly once."""

    def __init__(self, listener: socket.socket, on_serving: Callable[[], None]) -> None:
        super().__init__()
        self._listener = listener
        self._on_serving = on_serving
        self.bind = [f"fd://{listener.fileno()}"]

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        # hypercorn's socket object now owns the fd and closes it when it stops serving: detach ours so the
        # fd is closed exactly once (closing a reused fd number would hit an unrelated file).
        self._listener.detach()
        # hypercorn asks for its sockets only after the app's lifespan startup succeeded, so "started" means
        # the app is ready; the socket has listened all along, so an early client waits in the backlog.
        self._on_serving()
        return sockets


async def serve_asgi(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_seconds: float = 5.0,
    access_log: bool = False,
    tls_cert: str = "",
    tls_key: str = "",
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve app on host:port until shutdown_trigger returns or the enclosing scope is cancelled.

    task_status.started receives the bound port (useful with port 0) once the app's lifespan has started.
    Either way of stopping sets hypercorn's own shutdown trigger and lets it drain for graceful_seconds.
    With tls_cert and tls_key (PEM files) it serves HTTPS (HTTP/1.1 and HTTP/2) instead of plain HTTP.
    """
    # Checked before binding: a bad certificate is a ConfigError naming the key, not an SSL traceback.
    check_tls(tls_cert, tls_key)
    listener = bind_listener(host, port)
    bound_port: int = listener.getsockname()[1]
    config = _ListenerConfig(listener, on_serving=lambda: task_status.started(bound_port))
    if tls_cert:
        config.certfile, config.keyfile = tls_cert, tls_key
    config.graceful_timeout = graceful_seconds
    config.shutdown_timeout = LIFESPAN_SHUTDOWN_SECONDS
    # A Logger (not a path or "-") makes hypercorn log through the app's logging setup instead of adding
    # its own stderr handler; access lines stay off unless asked for.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    stop = anyio.Event()
    stopped = anyio.Event()
    # Shielded, so the caller's cancellation never reaches hypercorn: the watcher turns it into `stop`.
    hypercorn_scope = anyio.CancelScope(shield=True)
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(
                _watch_for_stop,
                shutdown_trigger,
                stop,
                stopped,
                hypercorn_scope,
                graceful_seconds + LIFESPAN_SHUTDOWN_SECONDS,
                name=f"serve_asgi stop watcher :{bound_port}",
            )
            with hypercorn_scope:
                try:
                    # An explicit trigger also keeps hypercorn from installing its own signal handlers.
                    # The same ASGI callable: Starlette types its scope as a mapping, hypercorn as TypedDicts.
                    await serve(cast(ASGIFramework, app), config, shutdown_trigger=stop.wait, mode="asgi")
                except Exception as error:
                    failure = error  # raised below, outside the task group, so callers see it unwrapped
                finally:
                    stopped.set()
            # hypercorn may also end on its own (an error, max_requests): the watcher has nothing left to do.
            task_group.cancel_scope.cancel()
    finally:
        listener.close()  # a no-op once hypercorn took the fd; frees the port if it never did
    if failure is not None:
        raise failure


async def _watch_for_stop(
    shutdown_trigger: Callable[[], Awaitable[None]] | None,
    stop: anyio.Event,
    stopped: anyio.Event,
    hypercorn_scope: anyio.CancelScope,
    deadline_seconds: float,
) -> None:
    """Set `stop` when the trigger returns or this task is cancelled, then bound hypercorn's drain."""
    try:
        if shutdown_trigger is None:
            await anyio.sleep_forever()
        else:
            await shutdown_trigger()
    finally:
        stop.set()
        with anyio.move_on_after(deadline_seconds, shield=True):
            await stopped.wait()
        if not stopped.is_set():
            logger.warning("hypercorn did not stop within %.1f s; cancelling it", deadline_seconds)
            hypercorn_scope.cancel()
