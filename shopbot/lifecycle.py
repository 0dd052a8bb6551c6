"""The shop's run state: ready, stopping, and why it stopped."""

from __future__ import annotations

import logging

import anyio

log = logging.getLogger(__name__)


class Lifecycle:
    """Shared by every service: they watch `stopping` and drain on their own when it is set."""

    def __init__(self) -> None:
        self.ready = False
        self.stopping = anyio.Event()
        self.exit_code = 0
        self.reason = ""

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        """Begin a graceful stop: readiness goes false before anything drains."""
        if self.stopping.is_set():
            return
        self.ready = False
        self.exit_code = exit_code
        self.reason = reason
        log.info("stopping: %s", reason)
        self.stopping.set()

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less when a stop is requested meanwhile; True when the shop is stopping."""
        with anyio.move_on_after(seconds):
            await self.stopping.wait()
        return self.stopping.is_set()

    async def wait_stopping(self) -> None:
        """Return once a stop was requested (hypercorn's shutdown trigger)."""
        await self.stopping.wait()
