"""Rate limits: token buckets kept in Redis when it is configured, in this process otherwise.

A limit of N per minute with a burst B is a bucket of N + B tokens that refills at N per minute: a
user may send N + B at once, then N a minute. Each check takes one token or says how long until the
next one. With Redis one Lua script per check reads, refills, takes and writes atomically, timed by
Redis's own clock, so every instance behind a load balancer draws from the same bucket. When Redis
is absent or unreachable (`RedisLink`) the buckets live in this process, bounded in number.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis

from shopbot.guard.redis_link import RedisLink

Entry = TypeVar("Entry")  # what a local table remembers per key: a bucket or a notice's deadline
KEY_PREFIX = "shopbot:limit:"
MAX_LOCAL_BUCKETS = 100_000

# KEYS[1]: the bucket. ARGV: capacity, refill per second, minimum time to live in ms.
# Returns {allowed (0|1), seconds until the next token (string: Lua numbers lose fractions on return)}.
_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local refill_ms = math.ceil((capacity - tokens) / rate * 1000)
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), refill_ms))
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute on average, `burst` more at once."""

    name: str
    per_minute: float
    burst: int = 0

    def scaled(self, multiplier: float) -> Limit:
        """The same limit for a user who gets `multiplier` times it (never below one a minute)."""
        return Limit(self.name, max(1.0, self.per_minute * multiplier), self.burst)

    @property
    def capacity(self) -> float:
        return self.per_minute + self.burst

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0

    @property
    def retry_seconds(self) -> int:
        """Whole seconds to tell a person (at least 1)."""
        return max(1, math.ceil(self.retry_after))


class RateLimiter:
    """Takes tokens from named buckets, shared through Redis when the link has it."""

    def __init__(
        self,
        link: RedisLink,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_local: int = MAX_LOCAL_BUCKETS,
    ) -> None:
        self.link = link
        self.ttl_ms = int(ttl * 1000)
        self.clock = clock
        self.max_local = max_local
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._notices: OrderedDict[str, float] = OrderedDict()
        self._script = link.client.register_script(_TAKE) if link.client is not None else None

    async def take(self, key: str, limit: Limit) -> Verdict:
        """Take one token for `key` under `limit`."""

        async def shared(client: Redis) -> Verdict:
            assert self._script is not None
            allowed, wait = await self._script(
                keys=[KEY_PREFIX + key], args=[repr(limit.capacity), repr(limit.per_second), self.ttl_ms], client=client
            )
            return Verdict(bool(int(allowed)), float(wait))

        return await self.link.call(shared, lambda: self._take_local(key, limit))

    async def first_notice(self, key: str, seconds: float) -> bool:
        """True once per `seconds` for `key`: whether to tell the user they are limited (not at every drop)."""
        ms = max(1, int(seconds * 1000))

        async def shared(client: Redis) -> bool:
            return bool(await client.set(KEY_PREFIX + "notice:" + key, b"1", nx=True, px=ms))

        return await self.link.call(shared, lambda: self._notice_local(key, seconds))

    def _take_local(self, key: str, limit: Limit) -> Verdict:
        now = self.clock()
        tokens, at = self._buckets.pop(key, (limit.capacity, now))
        tokens = min(limit.capacity, tokens + max(0.0, now - at) * limit.per_second)
        if tokens >= 1:
            verdict = Verdict(True)
            tokens -= 1
        else:
            verdict = Verdict(False, (1 - tokens) / limit.per_second)
        self._buckets[key] = (tokens, now)
        _bound(self._buckets, self.max_local)
        return verdict

    def _notice_local(self, key: str, seconds: float) -> bool:
        now = self.clock()
        until = self._notices.get(key)
        if until is not None and now < until:
            return False
        self._notices.pop(key, None)
        self._notices[key] = now + seconds
        _bound(self._notices, self.max_local)
        return True


def _bound(entries: OrderedDict[str, Entry], size: int) -> None:
    """Forget the least recently used entries beyond `size` (a forgotten bucket is a full one)."""
    while len(entries) > size:
        entries.popitem(last=False)
