"""The circuit breaker: a failing service is left alone for a while, then tried carefully.

The state machine runs twice, in-process and in Redis (each operation one Lua script), against the
same injected clock; then two instances share one circuit through Redis, and keep working when Redis
goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest
import redis.asyncio as redis

from shopbot.config.schema import CircuitBreakerConfig
from shopbot.guard.circuit import CircuitBreaker
from shopbot.guard.redis_link import RedisLink
from shopbot.metrics import Metrics
from tests.redis_outage import redis_outage

CONFIG = CircuitBreakerConfig(failure_threshold=5, timeout=60, success_threshold=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_000_000.0

    def __call__(self) -> float:
        return self.now


MakeBreaker = Callable[[Clock], CircuitBreaker]


@pytest.fixture(params=["in-process", "redis"])
async def make_breaker(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[MakeBreaker]:
    client = redis.Redis.from_url(redis_url) if request.param == "redis" else None
    link = RedisLink(client)

    def make(clock: Clock) -> CircuitBreaker:
        return CircuitBreaker("fragment", CONFIG, link, clock=clock)

    yield make
    if client is not None:
        assert not link.falling_back  # the Redis variant really ran in Redis
        await client.aclose()


async def test_opens_after_the_threshold_of_failures_in_a_row(make_breaker: MakeBreaker) -> None:
    clock = Clock()
    circuit = make_breaker(clock)
    for _ in range(4):
        await circuit.record_failure()
    await circuit.record_success()  # a success resets the count
    for _ in range(4):
        await circuit.record_failure()
    assert await circuit.state() == "closed" and await circuit.allow()
    await circuit.record_failure()
    assert await circuit.state() == "open" and not await circuit.allow()
    assert await circuit.retry_after() == 60
    clock.now += 20.5
    assert await circuit.retry_after() == pytest.approx(39.5)


async def test_half_open_after_the_timeout_and_closed_after_enough_successes(make_breaker: MakeBreaker) -> None:
    clock = Clock()
    circuit = make_breaker(clock)
    for _ in range(5):
        await circuit.record_failure()
    clock.now += 59.9
    assert not await circuit.allow()
    clock.now += 0.2
    assert await circuit.state() == "half_open" and await circuit.allow()
    assert await circuit.retry_after() == 0
    await circuit.record_success()
    await circuit.record_success()
    assert await circuit.state() == "half_open"
    await circuit.record_success()
    assert await circuit.state() == "closed"
    for _ in range(4):  # closed afresh: the old failures no longer count
        await circuit.record_failure()
    assert await circuit.state() == "closed"


async def test_a_failure_while_half_open_opens_it_again(make_breaker: MakeBreaker) -> None:
    clock = Clock()
    circuit = make_breaker(clock)
    for _ in range(5):
        await circuit.record_failure()
    clock.now += 61
    assert await circuit.state() == "half_open"
    await circuit.record_success()
    await circuit.record_failure()
    assert await circuit.state() == "open" and await circuit.retry_after() == 60


async def test_a_late_failure_while_open_does_not_extend_it(make_breaker: MakeBreaker) -> None:
    clock = Clock()
    circuit = make_breaker(clock)
    for _ in range(5):
        await circuit.record_failure()
    clock.now += 50
    await circuit.record_failure()  # a call that started before the circuit opened
    await circuit.record_success()
    assert await circuit.state() == "open" and await circuit.retry_after() == pytest.approx(10)
    clock.now += 10
    assert await circuit.state() == "half_open"


async def test_instances_sharing_redis_share_one_circuit(redis_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=3, timeout=0.3, success_threshold=2)
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        # Two shop instances: separate clients and links, no injected clock (Redis's TIME decides).
        one = CircuitBreaker("heleket", config, RedisLink(first))
        other = CircuitBreaker("heleket", config, RedisLink(second))
        await one.record_failure()
        await other.record_failure()
        assert await one.state() == await other.state() == "closed"
        await one.record_failure()  # the third in a row, counted across both instances
        assert not await other.allow()
        assert 0.2 < await other.retry_after() <= 0.3
        assert await CircuitBreaker("telegram", config, RedisLink(second)).state() == "closed"  # per service
        with anyio.fail_after(2):
            while await one.state() != "half_open":
                await anyio.sleep(0.02)
        await other.record_success()
        assert await one.state() == "half_open"
        await one.record_success()
        assert await other.state() == "closed"
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_outage_of_redis_falls_back_to_in_process_state_and_back(redis_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=60, success_threshold=1)
    async with redis_outage(redis_url) as outage:
        client = redis.Redis.from_url(outage.url, socket_timeout=1, socket_connect_timeout=1)
        observer = redis.Redis.from_url(redis_url)
        metrics = Metrics()
        link = RedisLink(client, metrics, retry_seconds=0.05)
        circuit = CircuitBreaker("telegram", config, link)
        try:
            await circuit.record_failure()
            await circuit.record_failure()
            assert await circuit.state() == "open"
            assert await observer.hget("shopbot:circuit:telegram", "state") == b"open"

            outage.cut()
            # No error reaches the caller: this instance's own state answers (it never saw the failures).
            assert await circuit.state() == "closed" and link.falling_back
            assert metrics.registry.get_sample_value("shopbot_redis_fallback") == 1
            await circuit.record_failure()
            await circuit.record_failure()
            assert not await circuit.allow()  # and it keeps working as a breaker on its own

            outage.restore()
            with anyio.fail_after(5):
                while link.falling_back:
                    await anyio.sleep(0.06)
                    await circuit.state()
            await observer.delete("shopbot:circuit:telegram")
            assert await circuit.state() == "closed"  # the shared state answers again
            assert metrics.registry.get_sample_value("shopbot_redis_fallback") == 0
        finally:
            await client.aclose()
            await observer.aclose()


async def test_a_redis_that_refuses_the_script_leaves_the_breaker_working(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        await client.set("shopbot:circuit:fragment", "not a circuit")  # WRONGTYPE for every script
        circuit = CircuitBreaker("fragment", CircuitBreakerConfig(failure_threshold=1, timeout=60), RedisLink(client))
        assert await circuit.allow()
        await circuit.record_failure()
        assert await circuit.state() == "open"  # this instance's own state answered
    finally:
        await client.aclose()
