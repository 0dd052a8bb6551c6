"""The cache: user profiles and payment lookups, shared through Redis when it answers, in-process otherwise.

Values are msgspec structs, stored as msgpack and decoded into the type the caller asks for (an entry
that no longer decodes, say after an upgrade, is a miss). Each kind lives `[cache] <kind>_ttl` seconds.
Nothing here decides about money: a balance is never cached, and a payment answer only saves asking
Heleket again; what is credited is decided in PostgreSQL.

Redis going away and coming back (decided once in `RedisLink`):
- While Redis is away, entries live in a bounded in-process LRU, for at most `FALLBACK_TTL` seconds:
  other instances cannot tell this one about their invalidations then, so a profile changed through
  another instance is stale for at most that long.
- Every key this instance wrote or forgot while Redis was away is deleted from Redis before Redis
  answers this instance again, and the in-process entries are dropped. A forget that happened during the
  outage (a user changed their language) therefore cannot be undone by the older entry still in Redis;
  at worst the next read misses and asks PostgreSQL. (Another instance may read that older entry in the
  few seconds before this one notices Redis is back: `RedisLink` retries every `retry_seconds`.)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

import msgspec
from redis.asyncio import Redis

from shopbot.config.schema import CacheConfig
from shopbot.guard.redis_link import RedisLink
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
Kind = Literal["user", "session", "payment"]
PREFIX = "shopbot:cache:"
DEFAULT_MAX_ENTRIES = 50_000
FALLBACK_TTL = 60.0
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_encode = msgspec.msgpack.Encoder().encode


class LocalEntries(Generic[K, V]):
    """A bounded LRU map whose entries expire: the in-process side of the cache and of the sessions."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, ttl: float) -> None:
        self._entries[key] = (self.clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def add(self, key: K, value: V, ttl: float) -> bool:
        """Put only if absent (or expired); True if this call put it."""
        if self.get(key) is not None:
            return False
        self.put(key, value, ttl)
        return True

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


class Touched:
    """Keys changed in-process while Redis was away, to set right in Redis when it is back (bounded:
    past `limit` keys, `overflowed` says to drop everything under the prefix instead)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.keys: set[Any] = set()
        self.overflowed = False

    def __bool__(self) -> bool:
        return self.overflowed or bool(self.keys)

    def add(self, key: Any) -> None:
        if self.overflowed:
            return
        self.keys.add(key)
        if len(self.keys) > self.limit:
            self.keys.clear()
            self.overflowed = True

    def done(self, keys: set[Any], overflowed: bool) -> None:
        self.keys.difference_update(keys)
        if overflowed:
            self.overflowed = False


async def delete_prefix(redis: Redis, prefix: str) -> None:
    """Delete every key under `prefix` (SCAN, not KEYS: Redis keeps answering others meanwhile)."""
    batch: list[Any] = []
    async for key in redis.scan_iter(match=prefix + "*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            await redis.delete(*batch)
            batch.clear()
    if batch:
        await redis.delete(*batch)


class Cache:
    """`get`, `put` and `forget` by kind and key; Redis when configured and answering, else in-process."""

    def __init__(
        self,
        link: RedisLink,
        config: CacheConfig,
        metrics: Metrics | None = None,
        *,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        max_entries = max_entries or config.max_entries
        self.link = link
        self.metrics = metrics
        self.ttls: dict[Kind, int] = {
            "user": config.user_ttl,
            "session": config.session_ttl,
            "payment": config.payment_ttl,
        }
        self.local: LocalEntries[str, bytes] = LocalEntries(max_entries, clock)
        self._touched = Touched(max_entries)
        self._decoders: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}
        if metrics is not None:  # exported at 0 from the start, so a dashboard has a series to show
            for kind in ("user", "payment"):
                metrics.cache_hits.labels(kind)
                metrics.cache_misses.labels(kind)

    @classmethod
    def in_process(cls, config: CacheConfig, metrics: Metrics | None = None) -> Cache:
        """A cache of this process only (no Redis)."""
        return cls(RedisLink(None), config, metrics)

    async def get(self, kind: Kind, key: str | int, type: type[T]) -> T | None:
        """The cached value as `type`, or None on a miss."""
        name = f"{PREFIX}{kind}:{key}"

        async def shared(redis: Redis) -> bytes | None:
            await self._set_right(redis)
            return await redis.get(name)

        raw = await self.link.call(shared, lambda: self.local.get(name))
        value = None if raw is None else self._decode(raw, type)
        if self.metrics is not None:
            (self.metrics.cache_misses if value is None else self.metrics.cache_hits).labels(kind).inc()
        return value

    async def put(self, kind: Kind, key: str | int, value: Any) -> None:
        """Remember `value` (a msgspec struct) for the kind's TTL."""
        name, raw, ttl = f"{PREFIX}{kind}:{key}", _encode(value), self.ttls[kind]

        async def shared(redis: Redis) -> None:
            await self._set_right(redis)
            await redis.set(name, raw, ex=ttl)

        def local() -> None:
            if self.link.shared:  # Redis is away: keep it short, and set Redis right when it is back
                self._touched.add(name)
                self.local.put(name, raw, min(ttl, FALLBACK_TTL))
            else:
                self.local.put(name, raw, ttl)

        await self.link.call(shared, local)

    async def forget(self, kind: Kind, key: str | int) -> None:
        """Drop the entry (call it after the source changed), on every instance sharing Redis."""
        name = f"{PREFIX}{kind}:{key}"

        async def shared(redis: Redis) -> None:
            await self._set_right(redis)
            await redis.delete(name)

        def local() -> None:
            if self.link.shared:
                self._touched.add(name)
            self.local.pop(name)

        await self.link.call(shared, local)

    async def _set_right(self, redis: Redis) -> None:
        """After an outage: delete from Redis what changed here meanwhile, then forget the local entries."""
        touched = self._touched
        if not touched:
            return
        keys, overflowed = set(touched.keys), touched.overflowed
        if overflowed:
            await delete_prefix(redis, PREFIX)
        elif keys:
            await redis.delete(*keys)
        touched.done(keys, overflowed)
        self.local.clear()
        log.info(
            "cache: %s entries changed during the Redis outage dropped from Redis", "all" if overflowed else len(keys)
        )

    def _decode(self, raw: bytes, type: type[T]) -> T | None:
        decoder = self._decoders.get(type)
        if decoder is None:
            decoder = self._decoders[type] = msgspec.msgpack.Decoder(type)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # written by another version of the struct: as good as absent
