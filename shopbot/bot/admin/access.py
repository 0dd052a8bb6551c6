"""Who is an admin: `[telegram] admin_ids`. Everyone else sees nothing of the admin area, and each
attempt to reach it is logged."""

from __future__ import annotations

import logging
from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, User

log = logging.getLogger(__name__)


class IsAdmin(Filter):
    """Passes for admins; for anyone else it fails (the update falls through to the ordinary bot, which
    answers as if the admin area did not exist) and logs the attempt."""

    def __init__(self, admin_ids: tuple[int, ...]) -> None:
        self.admins = frozenset(admin_ids)

    async def __call__(self, event: Message | CallbackQuery, event_from_user: User | None = None, **_: Any) -> bool:
        if event_from_user is not None and event_from_user.id in self.admins:
            return True
        log.warning("admin area refused to user %s", event_from_user.id if event_from_user else "unknown")
        return False
