"""A wake-up signal for emulators' waiters."""

from __future__ import annotations

import anyio


class Pulse:
    """Wakes every current waiter once; the Event is made lazily since an emulator may be built off-loop."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
