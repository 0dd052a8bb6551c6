"""The optional Redis connection shared by the rate limiter, the cache and the bot's state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import redis.asyncio as redis

from shopbot.config.schema import RedisConfig


@contextlib.asynccontextmanager
async def open_redis(config: RedisConfig) -> AsyncIterator[redis.Redis | None]:
    """A client when `[redis] url` is set, else None (in-process fallbacks take over)."""
    if not config.url:
        yield None
        return
    client = redis.Redis.from_url(config.url.reveal(), socket_timeout=5, socket_connect_timeout=5)
    try:
        yield client
    finally:
        with anyio.move_on_after(5, shield=True):
            await client.aclose()
