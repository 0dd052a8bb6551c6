"""The bot's sessions (aiogram FSM state and data): in Redis when it answers, in-process otherwise.

Both sides expire a session `[cache] session_ttl` seconds after its last change, and both store data
as JSON, so a flow behaves the same whichever side answers. When Redis goes away the in-process side
takes over with what it has (nothing of the sessions kept in Redis): a user in the middle of a flow
gets the answer a user with no flow gets, and can start again. When Redis is back, every session this
instance changed meanwhile is written to Redis as it stands here (or deleted there, if it ended here),
before Redis answers this instance again, so a flow started during the outage goes on and one left
during it does not come back from Redis (the cache's `Failover`, with the sessions' own way to carry over).

`claim_once` gives one caller a name in whichever FSM storage the dispatcher was built with (a purchase's
Confirm is honoured once with it).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis

from shopbot.cache import DEFAULT_MAX_ENTRIES, Failover, LocalEntries
from shopbot.guard.redis_link import RedisLink

log = logging.getLogger(__name__)
Part = Literal["state", "data"]  # what a session holds; one Redis key and one in-process entry each
PARTS: tuple[Part, ...] = ("state", "data")
PREFIX = "fsm"  # aiogram's DefaultKeyBuilder prefix: sessions written by RedisStorage before stay readable
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder(dict[str, Any]).decode


class FailoverStorage(BaseStorage):
    """An aiogram FSM storage choosing Redis or this process per call, through the shared `RedisLink`."""

    def __init__(
        self,
        link: RedisLink,
        ttl: int,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.ttl = ttl
        self.key_builder = DefaultKeyBuilder(prefix=PREFIX)
        # One in-process entry per session part: (key, "state") -> state, (key, "data") -> JSON.
        self.local: LocalEntries[tuple[StorageKey, Part], str | bytes] = LocalEntries(max_entries, clock)
        self.failover = Failover(
            link, self.local, prefix=PREFIX + ":", carry_over=self._carry_over, report=_report_carried_over
        )
        self._claims: LocalEntries[str, bool] = LocalEntries(max_entries, clock)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(key, "state", value)

    async def get_state(self, key: StorageKey) -> str | None:
        value = await self._read(key, "state")
        return value.decode() if isinstance(value, bytes) else value

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DataNotDictLikeError(f"Data must be a dict or dict-like object, got {type(data).__name__}")
        await self._write(key, "data", _json_encode(data) if data else None)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        raw = await self._read(key, "data")
        return {} if raw is None else _json_decode(raw)

    async def claim(self, name: str, ttl: int) -> bool:
        """True for exactly one caller per Redis key `name` within `ttl` seconds, across the instances
        sharing Redis (during an outage: within this process)."""

        async def shared(redis: Redis) -> bool:
            return bool(await redis.set(name, 1, nx=True, ex=ttl))

        return await self.link.call(shared, lambda: self._claims.add(name, True, ttl))

    async def close(self) -> None:
        """Nothing to close: the Redis client belongs to the shop, which closes it."""

    async def _read(self, key: StorageKey, part: Part) -> str | bytes | None:
        async def shared(redis: Redis) -> str | bytes | None:
            value: str | bytes | None = await redis.get(self.key_builder.build(key, part))
            return value

        return await self.failover.call(shared, lambda: self.local.get((key, part)))

    async def _write(self, key: StorageKey, part: Part, value: str | bytes | None) -> None:
        async def shared(redis: Redis) -> None:
            name = self.key_builder.build(key, part)
            if value is None:
                await redis.delete(name)
            else:
                await redis.set(name, value, ex=self.ttl)

        def local() -> None:
            self.failover.changed_here(key)
            if value is None:
                self.local.pop((key, part))
            else:
                self.local.put((key, part), value, self.ttl)

        await self.failover.call(shared, local)

    async def _carry_over(self, redis: Redis, keys: set[StorageKey]) -> None:
        """The sessions' way back from an outage: those changed here meanwhile go to Redis as they stand here
        (or are deleted there, if they ended here)."""
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                for part in PARTS:
                    name, value = self.key_builder.build(key, part), self.local.get((key, part))
                    if value is None:
                        pipe.delete(name)
                    else:
                        pipe.set(name, value, ex=self.ttl)
            await pipe.execute()


def _report_carried_over(count: int | None) -> None:
    # Too many to carry over: every session starts afresh rather than resuming a stale one.
    log.info(
        "sessions: %s changed during the Redis outage carried over to Redis",
        "none (too many)" if count is None else count,
    )


# Claims made with an FSM storage that is not shared (aiogram's in-memory one: a single process).
_process_claims: LocalEntries[str, bool] = LocalEntries()


@functools.singledispatch
async def claim_once(storage: BaseStorage, name: str, ttl: int) -> bool:
    """True for exactly one caller per `name` within `ttl` seconds, across every instance sharing the FSM
    `storage`. One atomic step in that storage: here, in-memory FSM, a check-and-add with no await between."""
    return _process_claims.add(name, True, ttl)


@claim_once.register
async def _claim_in_failover(storage: FailoverStorage, name: str, ttl: int) -> bool:
    return await storage.claim(name, ttl)


@claim_once.register
async def _claim_in_redis(storage: RedisStorage, name: str, ttl: int) -> bool:
    return bool(await storage.redis.set(name, 1, nx=True, ex=ttl))
