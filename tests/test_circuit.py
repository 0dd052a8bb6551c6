"""The circuit breaker: a failing service is left alone for a while, then tried carefully."""

from __future__ import annotations

from shopbot.config.schema import CircuitBreakerConfig
from shopbot.guard.circuit import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("fragment", CircuitBreakerConfig(failure_threshold=5, timeout=60, success_threshold=3),
                          clock=clock)


def test_opens_after_the_threshold_of_failures_in_a_row() -> None:
    clock = Clock()
    circuit = breaker(clock)
    for _ in range(4):
        circuit.record_failure()
    circuit.record_success()  # a success resets the count
    for _ in range(4):
        circuit.record_failure()
    assert circuit.state == "closed" and circuit.allow()
    circuit.record_failure()
    assert circuit.state == "open" and not circuit.allow()
    assert circuit.retry_after() == 60


def test_half_open_after_the_timeout_and_closed_after_enough_successes() -> None:
    clock = Clock()
    circuit = breaker(clock)
    for _ in range(5):
        circuit.record_failure()
    clock.now += 59.9
    assert not circuit.allow()
    clock.now += 0.2
    assert circuit.state == "half_open" and circuit.allow()
    circuit.record_success()
    circuit.record_success()
    assert circuit.state == "half_open"
    circuit.record_success()
    assert circuit.state == "closed"


def test_a_failure_while_half_open_opens_it_again() -> None:
    clock = Clock()
    circuit = breaker(clock)
    for _ in range(5):
        circuit.record_failure()
    clock.now += 61
    assert circuit.state == "half_open"
    circuit.record_failure()
    assert circuit.state == "open" and circuit.retry_after() == 60
