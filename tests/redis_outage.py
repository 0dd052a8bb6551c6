"""A TCP proxy in front of the test Redis that a test can cut and restore: Redis disappearing at runtime.

Works the same in front of a real Redis and fakeredis. While cut, live connections are closed and new
ones are accepted and closed at once, as a stopped server behind a load balancer looks to a client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import anyio
from anyio.abc import SocketStream, TaskGroup


class RedisOutage:
    def __init__(self, target_host: str, target_port: int, url_template: str) -> None:
        self.target = (target_host, target_port)
        self.url_template = url_template
        self.port = 0
        self.is_cut = False
        self._live: set[anyio.CancelScope] = set()

    @property
    def url(self) -> str:
        """The Redis URL clients should use: the proxy's address, the same database number."""
        parts = urlsplit(self.url_template)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def cut(self) -> None:
        """Redis goes away: every connection drops, new ones are refused."""
        self.is_cut = True
        for scope in list(self._live):
            scope.cancel()

    def restore(self) -> None:
        """Redis is back."""
        self.is_cut = False

    async def _serve(self, client: SocketStream) -> None:
        async with client:
            if self.is_cut:
                return
            with anyio.CancelScope() as scope:
                self._live.add(scope)
                try:
                    async with await anyio.connect_tcp(*self.target) as upstream, anyio.create_task_group() as pipes:
                        pipes.start_soon(_pipe, client, upstream, pipes)
                        pipes.start_soon(_pipe, upstream, client, pipes)
                except OSError:
                    pass
                finally:
                    self._live.discard(scope)


async def _pipe(source: SocketStream, sink: SocketStream, pipes: TaskGroup) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    pipes.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def redis_outage(redis_url: str) -> AsyncIterator[RedisOutage]:
    """A proxy to `redis_url`, running until the block ends."""
    parts = urlsplit(redis_url)
    outage = RedisOutage(parts.hostname or "127.0.0.1", parts.port or 6379, redis_url)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    outage.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, outage._serve)
        try:
            yield outage
        finally:
            group.cancel_scope.cancel()
