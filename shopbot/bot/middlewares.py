"""Dispatcher middlewares: what every update passes through before a handler."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiogram import BaseMiddleware
from aiogram.fsm.context import FSMContext
from aiogram.types import TelegramObject, User

from shopbot.db.queries import queries
from shopbot.locales import Texts, Translator, pick_language

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class KnownUserMiddleware(BaseMiddleware):
    """Records the sender of every update (one upsert, skipped while the profile is unchanged and
    younger than `ttl` seconds) and gives handlers `shop_user`, `lang` and `t` (texts in their language)."""

    def __init__(self, pool: asyncpg.Pool, texts: Texts, ttl: float) -> None:
        self.pool = pool
        self.texts = texts
        self.ttl = ttl
        self._seen: dict[int, tuple[tuple[Any, ...], float, asyncpg.Record]] = {}

    def forget(self, user_id: int) -> None:
        """Drop the cached profile (after the user changed something stored, such as the language)."""
        self._seen.pop(user_id, None)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and not user.is_bot:
            row = await self._record(user)
            language = pick_language(row["language"])
            data["shop_user"] = row
            data["lang"] = language
            data["t"] = Translator(self.texts, language)
        return await handler(event, data)

    async def _record(self, user: User) -> asyncpg.Record:
        profile = (user.username, user.first_name, user.last_name, pick_language(user.language_code),
                   bool(user.is_premium))
        cached = self._seen.get(user.id)
        now = time.monotonic()
        if cached and cached[0] == profile and now - cached[1] < self.ttl:
            return cached[2]
        row = await queries.users.upsert_user(self.pool, user.id, *profile)
        if len(self._seen) > 50_000:  # bounded: a flood of new users must not grow memory without end
            self._seen.clear()
        self._seen[user.id] = (profile, now, row)
        return row


class CommandsLeaveFlows(BaseMiddleware):
    """A typed command means the user moved on: any half-finished entry (an amount, a username) is
    left behind before the command runs, so the next plain text is not taken for that entry."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        text = getattr(event, "text", None)
        if state is not None and isinstance(text, str) and text.startswith("/") and await state.get_state():
            await state.clear()
        return await handler(event, data)
