"""The optional shared Redis, and the one place that decides when to fall back to in-process state.

Everything shared across instances (rate limits, circuit states, the cache, the bot's sessions) goes
through `RedisLink.call`: with no `[redis] url` the in-process fallback answers; with one, Redis
answers, and when it stops answering the link switches every caller to the fallback at once, logs it
once, raises `shopbot_redis_fallback`, and tries Redis again every `retry_seconds` until it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
# What "Redis is not there" looks like; a script or data error is a bug and propagates.
OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class RedisLink:
    """A Redis client (or None) plus the shared up/down state of the connection to it."""

    def __init__(
        self,
        client: Redis | None,
        metrics: Metrics | None = None,
        *,
        retry_seconds: float = 5.0,
        call_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.retry_seconds = retry_seconds
        self.call_timeout = call_timeout
        self.clock = clock
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def shared(self) -> bool:
        """Is Redis configured (whether or not it answers right now)?"""
        return self.client is not None

    @property
    def falling_back(self) -> bool:
        """Is Redis configured but unreachable, so in-process state answers instead?"""
        return self._down_since is not None

    async def call(self, shared: Callable[[Redis], Awaitable[T]], local: Callable[[], Awaitable[T] | T]) -> T:
        """`shared(redis)` when Redis is configured and answering, else `local()`."""
        client = self.client
        if client is None or (self._down_since is not None and self.clock() < self._retry_at):
            return await _result(local())
        try:
            with anyio.fail_after(self.call_timeout):
                value = await shared(client)
        except OUTAGE as exc:
            self._went_down(exc)
            return await _result(local())
        self._came_back()
        return value

    def _went_down(self, exc: BaseException) -> None:
        now = self.clock()
        self._retry_at = now + self.retry_seconds
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "Redis is unreachable (%s): using in-process limits, cache and sessions until it returns",
                type(exc).__name__,
            )
            if self.metrics is not None:
                self.metrics.redis_fallback.set(1)
                self.metrics.redis_outages.inc()

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        log.warning("Redis is reachable again after %.0f s: shared state resumed", self.clock() - self._down_since)
        self._down_since = None
        if self.metrics is not None:
            self.metrics.redis_fallback.set(0)


async def _result(value: Awaitable[T] | T) -> T:
    if isinstance(value, Awaitable):
        return await value
    return value
