"""A circuit breaker: stop calling a service that keeps failing, and try it again after a while.

closed --(failure_threshold failures in a row)--> open --(timeout seconds)--> half_open
half_open --(success_threshold successes)--> closed;  half_open --(a failure)--> open
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shopbot.config.schema import CircuitBreakerConfig

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """In-process state for one service; callers ask `allow()` first and report the outcome."""

    def __init__(self, name: str, config: CircuitBreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self._state = CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0

    @property
    def state(self) -> str:
        if self._state == OPEN and self.clock() - self._opened_at >= self.config.timeout:
            self._state, self._successes = HALF_OPEN, 0
        return self._state

    def allow(self) -> bool:
        """May the service be called now?"""
        return self.state != OPEN

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a call through again."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.config.timeout - (self.clock() - self._opened_at))

    def record_success(self) -> None:
        if self.state == HALF_OPEN:
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._state, self._failures = CLOSED, 0
        else:
            self._failures = 0

    def record_failure(self) -> None:
        state = self.state
        self._failures += 1
        if state == HALF_OPEN or self._failures >= self.config.failure_threshold:
            self._state, self._opened_at, self._successes = OPEN, self.clock(), 0
