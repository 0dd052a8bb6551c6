"""The cache: user profiles and payment lookups, shared through Redis when it answers, in-process otherwise.

Values are msgspec structs, stored as msgpack and decoded into the type the caller asks for (an entry
that no longer decodes, say after an upgrade, is a miss). Each kind lives `[cache] <kind>_ttl` seconds.
Nothing here decides about money: a balance is never cached, and a payment answer only saves asking
Heleket again; what is credited is decided in PostgreSQL.

Redis going away and coming back (decided once in `RedisLink`; the way back, `Failover`, is the one the
bot's sessions use too):
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
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Literal, Protocol, TypeVar

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


class OutageChanges(Generic[K]):
    """The keys changed in-process while Redis was away: what Redis must be told when it is back. Bounded:
    past `limit` keys it keeps only `overflowed`, and everything under the prefix is dropped instead."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.keys: set[K] = set()
        self.overflowed = False

    def __bool__(self) -> bool:
        return self.overflowed or bool(self.keys)

    def add(self, key: K) -> None:
        if self.overflowed:
            return
        self.keys.add(key)
        if len(self.keys) > self.limit:
            self.keys.clear()
            self.overflowed = True

    def done(self, keys: set[K], overflowed: bool) -> None:
        """Forget what was carried over (keys changed while it was being carried stay for the next time)."""
        self.keys.difference_update(keys)
        if overflowed:
            self.overflowed = False


class Forgettable(Protocol):
    """In-process entries a `Failover` drops once Redis has caught up (a `LocalEntries`)."""

    max_entries: int

    def clear(self) -> None: ...


class Failover(Generic[K]):
    """Redis when it answers, bounded in-process `local` entries when it does not, and the one way back,
    shared by the cache and the bot's sessions: before Redis answers this instance again, `carry_over`
    tells Redis about every key changed here meanwhile (past the bound, everything under `prefix` is
    deleted instead), the local entries are dropped, and `report` hears how many keys went over (None:
    too many, all dropped)."""

    def __init__(
        self,
        link: RedisLink,
        local: Forgettable,
        *,
        prefix: str,
        carry_over: Callable[[Redis, set[K]], Awaitable[None]],
        report: Callable[[int | None], None],
    ) -> None:
        self.link = link
        self.local = local
        self.prefix = prefix
        self.carry_over = carry_over
        self.report = report
        self.changes: OutageChanges[K] = OutageChanges(local.max_entries)

    async def call(self, shared: Callable[[Redis], Awaitable[T]], local: Callable[[], T]) -> T:
        """`shared(redis)`, once Redis has caught up with the outage, when Redis answers; else `local()`."""

        async def caught_up(redis: Redis) -> T:
            await self.catch_up(redis)
            return await shared(redis)

        return await self.link.call(caught_up, local)

    def changed_here(self, key: K) -> None:
        """Note a change made in-process; with Redis configured (and so away) Redis must hear of it later."""
        if self.link.shared:
            self.changes.add(key)

    async def catch_up(self, redis: Redis) -> None:
        """Back from an outage: carry the keys changed here meanwhile over to Redis, then drop the local entries."""
        changes = self.changes
        if not changes:
            return
        keys, overflowed = set(changes.keys), changes.overflowed
        if overflowed:
            await delete_prefix(redis, self.prefix)
        else:
            await self.carry_over(redis, keys)
        changes.done(keys, overflowed)
        self.local.clear()
        self.report(None if overflowed else len(keys))


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


async def _drop(redis: Redis, names: set[str]) -> None:
    """The cache's way back from an outage: entries changed here meanwhile are deleted from Redis (the next
    read asks the source), so a forget made during the outage is not undone by an older entry."""
    await redis.delete(*names)


def _report_dropped(count: int | None) -> None:
    log.info("cache: %s entries changed during the Redis outage dropped from Redis", "all" if count is None else count)


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
        self.failover = Failover(self.link, self.local, prefix=PREFIX, carry_over=_drop, report=_report_dropped)
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
            raw = await redis.get(name)
            return raw if isinstance(raw, bytes) else None  # the shop's client never decodes: bytes or nothing

        raw = await self.failover.call(shared, lambda: self.local.get(name))
        value = None if raw is None else self._decode(raw, type)
        if self.metrics is not None:
            (self.metrics.cache_misses if value is None else self.metrics.cache_hits).labels(kind).inc()
        return value

    async def put(self, kind: Kind, key: str | int, value: Any) -> None:
        """Remember `value` (a msgspec struct) for the kind's TTL."""
        name, raw, ttl = f"{PREFIX}{kind}:{key}", _encode(value), self.ttls[kind]

        async def shared(redis: Redis) -> None:
            await redis.set(name, raw, ex=ttl)

        def local() -> None:
            self.failover.changed_here(name)
            # With Redis configured it is away: keep the entry short (other instances' forgets go unheard).
            self.local.put(name, raw, min(ttl, FALLBACK_TTL) if self.link.shared else ttl)

        await self.failover.call(shared, local)

    async def forget(self, kind: Kind, key: str | int) -> None:
        """Drop the entry (call it after the source changed), on every instance sharing Redis."""
        name = f"{PREFIX}{kind}:{key}"

        async def shared(redis: Redis) -> None:
            await redis.delete(name)

        def local() -> None:
            self.failover.changed_here(name)
            self.local.pop(name)

        await self.failover.call(shared, local)

    def _decode(self, raw: bytes, type: type[T]) -> T | None:
        decoder = self._decoders.get(type)
        if decoder is None:
            decoder = self._decoders[type] = msgspec.msgpack.Decoder(type)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # written by another version of the struct: as good as absent
