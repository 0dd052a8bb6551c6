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

    async def wait_stopping(self) -> None:
        """Return once a stop was requested (hypercorn's shutdown trigger)."""
        await self.stopping.wait()
