"""Circuit breakers: stop calling a service that keeps failing, and try it again after a while.

closed --(failure_threshold failures in a row)--> open --(timeout seconds)--> half_open
half_open --(success_threshold successes)--> closed;  half_open --(a failure)--> open

With Redis configured every instance shares one state per service (key `shopbot:circuit:<name>`,
each operation one Lua script timed by Redis's own clock, so instances agree on when a circuit
opened); without Redis, and while it is unreachable, each instance keeps its own state (RedisLink).
Half-open lets calls through as they come; the first failure among them opens the circuit again. A
failure reported while the circuit is already open (a call that started before it opened) does not
restart its timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from shopbot.config.schema import CircuitBreakerConfig
from shopbot.guard.redis_link import RedisLink

log = logging.getLogger(__name__)
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_NUMBERS = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # shopbot_circuit_state
SERVICES = ("fragment", "heleket", "telegram")
T = TypeVar("T")


class CircuitStatus(NamedTuple):
    state: str
    retry_after: float  # seconds until an open circuit lets calls through again; 0 unless open


class LocalCircuit:
    """The state machine of one service in this process; `clock` is injectable for tests."""

    def __init__(self, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._state = CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0

    def status(self) -> CircuitStatus:
        now = self.clock()
        if self._state == OPEN and now - self._opened_at >= self.config.timeout:
            self._state, self._successes = HALF_OPEN, 0
        if self._state != OPEN:
            return CircuitStatus(self._state, 0.0)
        return CircuitStatus(OPEN, max(0.0, self.config.timeout - (now - self._opened_at)))

    def record_success(self) -> tuple[str, str]:
        """(state before, state after)."""
        before = self.status().state
        if before == HALF_OPEN:
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._state, self._failures, self._successes = CLOSED, 0, 0
        else:
            self._failures = 0
        return before, self._state

    def record_failure(self) -> tuple[str, str]:
        """(state before, state after)."""
        before = self.status().state
        if before == OPEN:
            return before, before
        self._failures += 1
        if before == HALF_OPEN or self._failures >= self.config.failure_threshold:
            self._state, self._opened_at, self._failures, self._successes = OPEN, self.clock(), 0, 0
        return before, self._state


# Every script reads the circuit, moves an open one whose timeout has passed to half_open, then acts.
# ARGV: failure_threshold, timeout, success_threshold, now ('' = Redis's TIME, the clock all instances share).
_PRELUDE = """
local key = KEYS[1]
local failure_threshold = tonumber(ARGV[1])
local timeout = tonumber(ARGV[2])
local success_threshold = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local c = redis.call('HMGET', key, 'state', 'failures', 'successes', 'opened_at')
local state = c[1] or 'closed'
local failures = tonumber(c[2]) or 0
local successes = tonumber(c[3]) or 0
local opened_at = tonumber(c[4]) or 0
if state == 'open' and now - opened_at >= timeout then
  state = 'half_open'
  successes = 0
  redis.call('HSET', key, 'state', state, 'successes', 0)
end
local before = state
"""
_STATUS = (
    _PRELUDE
    + """
local wait = 0
if state == 'open' then wait = math.max(0, timeout - (now - opened_at)) end
return {state, string.format('%.6f', wait)}
"""
)
_SUCCESS = (
    _PRELUDE
    + """
if state == 'half_open' then
  successes = successes + 1
  if successes >= success_threshold then
    state = 'closed'
    redis.call('HSET', key, 'state', state, 'failures', 0, 'successes', 0)
  else
    redis.call('HSET', key, 'successes', successes)
  end
elseif failures ~= 0 then
  redis.call('HSET', key, 'failures', 0)
end
return {before, state}
"""
)
_FAILURE = (
    _PRELUDE
    + """
if state ~= 'open' then
  failures = failures + 1
  if state == 'half_open' or failures >= failure_threshold then
    state = 'open'
    redis.call('HSET', key, 'state', state, 'failures', 0, 'successes', 0,
               'opened_at', string.format('%.6f', now))
  else
    redis.call('HSET', key, 'state', state, 'failures', failures)
  end
end
return {before, state}
"""
)


class CircuitBreaker:
    """One service's circuit; callers ask `allow()` (or `status()`) first and report each outcome."""

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig,
        link: RedisLink | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.link = link if link is not None else RedisLink(None)
        self.key = f"shopbot:circuit:{name}"
        self.local = LocalCircuit(config, clock or time.monotonic)
        # An injected clock drives the shared state too (tests); otherwise Redis's TIME does.
        self._clock = clock
        self._refused = False
        client = self.link.client
        self._scripts: dict[str, AsyncScript] = {}
        if client is not None:
            self._scripts = {
                operation: client.register_script(body)
                for operation, body in (("status", _STATUS), ("success", _SUCCESS), ("failure", _FAILURE))
            }

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r})"

    async def status(self) -> CircuitStatus:
        """The state now, and how long an open circuit stays open."""
        state, wait = await self.link.call(
            lambda redis: self._run(redis, "status", self.local.status), self.local.status
        )
        return CircuitStatus(_text(state), float(_text(wait)))

    async def state(self) -> str:
        """ "closed", "open" or "half_open"."""
        return (await self.status()).state

    async def allow(self) -> bool:
        """May the service be called now?"""
        return (await self.status()).state != OPEN

    async def retry_after(self) -> float:
        """Seconds until an open circuit lets a call through again (0 when it does now)."""
        return (await self.status()).retry_after

    async def record_success(self) -> str:
        """Count a call the service answered; the state after it."""
        return self._log(
            await self.link.call(
                lambda redis: self._run(redis, "success", self.local.record_success), self.local.record_success
            )
        )

    async def record_failure(self) -> str:
        """Count a call the service failed; the state after it."""
        return self._log(
            await self.link.call(
                lambda redis: self._run(redis, "failure", self.local.record_failure), self.local.record_failure
            )
        )

    async def _run(self, redis: Redis, script: str, local: Callable[[], T]) -> list[bytes | str] | T:
        now = "" if self._clock is None else repr(self._clock())
        config = self.config
        args: list[int | str] = [config.failure_threshold, repr(float(config.timeout)), config.success_threshold, now]
        try:
            answer: list[bytes | str] = await self._scripts[script](keys=[self.key], args=args, client=redis)
        except ResponseError as exc:
            # Redis is there but refuses (out of memory, a read-only replica after a failover): a breaker is
            # advice, so this instance's own state answers rather than failing the call it guards.
            if not self._refused:
                log.error("Redis refused the %s circuit's script (%s): using this instance's own state", self.name, exc)
            self._refused = True
            return local()
        self._refused = False
        return answer

    def _log(self, change: tuple[str, str] | list[bytes | str]) -> str:
        before, after = (_text(part) for part in change)
        if before == after:
            return after
        if after == OPEN:
            log.warning(
                "%s circuit opened (%s): calls to it fail fast for %g s",
                self.name,
                "a trial call failed" if before == HALF_OPEN else f"{self.config.failure_threshold} failures in a row",
                self.config.timeout,
            )
        elif after == CLOSED:
            log.warning("%s circuit closed: the service answers again", self.name)
        return after


def open_circuits(config: CircuitBreakerConfig, link: RedisLink) -> dict[str, CircuitBreaker]:
    """One breaker per outside service the shop calls, all with the same settings."""
    return {name: CircuitBreaker(name, config, link) for name in SERVICES}


def _text(value: bytes | str | float) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
