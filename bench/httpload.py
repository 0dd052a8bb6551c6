"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next request as soon
as the previous answer arrived. Hand-rolled on asyncio streams because a full client (httpx, aiohttp) would
spend more of the two cores than the server under test does."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import BenchFailure


@dataclass
class LoadResult:
    started: float = 0.0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # index into the bodies given, per completed request

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0


async def post_load(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    *,
    connections: int,
    seconds: float,
    cycle: bool = False,
    keep_bodies: bool = True,
) -> LoadResult:
    """POST bodies in order over `connections` connections until they run out (or, with cycle, forever) or
    `seconds` pass. Any broken connection fails the run: a lost answer is a lost webhook."""
    result = LoadResult()
    heads = {}
    next_index = 0
    deadline = 0.0

    def head(length: int) -> bytes:
        if length not in heads:
            heads[length] = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
        return heads[length]

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await connect()
        try:
            while time.perf_counter() < deadline:
                index = next_index
                if index >= len(bodies):
                    if not cycle:
                        return
                    index %= len(bodies)
                next_index += 1
                body = bodies[index]
                sent = time.perf_counter()
                writer.write(head(len(body)) + body)
                try:
                    response = await reader.readuntil(b"\r\n\r\n")
                    length = _content_length(response)
                    answer = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError) as error:
                    raise BenchFailure(f"the server broke a connection mid-request: {error!r}") from None
                result.latencies.append(time.perf_counter() - sent)
                result.statuses.append(int(response[9:12]))
                result.sent.append(index)
                if keep_bodies:
                    result.bodies.append(answer)
                if b"\r\nconnection: close" in response.lower():
                    # The server ends this connection after its answer (hypercorn does after 1,000 requests
                    # on one connection): as any HTTP/1.1 client would, go on on a new one.
                    writer.close()
                    reader, writer = await connect()
        finally:
            writer.close()

    result.started = time.perf_counter()
    deadline = result.started + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(connections):
            group.create_task(connection())
    result.elapsed = time.perf_counter() - result.started
    return result


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        raise BenchFailure(f"an answer without Content-Length: {head[:200]!r}")
    end = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + 17 : end].strip())
