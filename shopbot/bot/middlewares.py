"""Dispatcher middlewares: what every update passes through before a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from aiogram import BaseMiddleware
from aiogram.fsm.context import FSMContext
from aiogram.types import TelegramObject, User

from shopbot.cache import Cache
from shopbot.db.queries import queries
from shopbot.locales import Texts, Translator, pick_language

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ShopUser(msgspec.Struct, frozen=True, kw_only=True):
    """The sender as the shop knows them: `data["shop_user"]`. Never a balance (read where money is decided)."""

    id: int
    username: str | None
    first_name: str
    last_name: str | None
    language: str  # the language the shop speaks to them: their own choice, else Telegram's
    is_premium: bool
    telegram_language: str  # Telegram's language as last recorded (with the names: what an upsert stores)
    first_seen_at: datetime | None = None

    def sender(self) -> tuple[Any, ...]:
        """What Telegram tells about the user with each update; a change is stored at once."""
        return self.id, self.username, self.first_name, self.last_name, self.is_premium, self.telegram_language


def _as_sent(user: User) -> ShopUser:
    return ShopUser(
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        language="",
        is_premium=bool(user.is_premium),
        telegram_language=pick_language(user.language_code),
    )


class KnownUserMiddleware(BaseMiddleware):
    """Records the sender of every update (one upsert, skipped while the cached profile is unchanged; the
    cache is shared by every instance using the same Redis) and gives handlers `shop_user`, `lang` and `t`
    (texts in their language)."""

    def __init__(self, pool: asyncpg.Pool, texts: Texts, cache: Cache) -> None:
        self.pool = pool
        self.texts = texts
        self.cache = cache

    async def forget(self, user_id: int) -> None:
        """Drop the cached profile everywhere (after the user changed something stored, such as the language)."""
        await self.cache.forget("user", user_id)

    async def language_stored(self, shop_user: ShopUser, language: str | None) -> None:
        """The user's own language choice is stored (`language`, as the database returned it): the cached
        profile says so everywhere at once, so the next update needs no upsert to learn it. None (no row came
        back): the profile is dropped instead, and the next update reads it."""
        if language is None:
            await self.forget(shop_user.id)
        else:
            await self.cache.put("user", shop_user.id, msgspec.structs.replace(shop_user, language=language))

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and not user.is_bot:
            shop_user = await self._record(user)
            language = pick_language(shop_user.language)
            data["shop_user"] = shop_user
            data["lang"] = language
            data["t"] = Translator(self.texts, language)
        return await handler(event, data)

    async def _record(self, user: User) -> ShopUser:
        sent = _as_sent(user)
        cached = await self.cache.get("user", user.id, ShopUser)
        if cached is not None and cached.sender() == sent.sender():
            return cached
        row = await queries.users.upsert_user(
            self.pool, user.id, sent.username, sent.first_name, sent.last_name, sent.telegram_language, sent.is_premium
        )
        shop_user = msgspec.structs.replace(sent, language=row["language"], first_seen_at=row["first_seen_at"])
        await self.cache.put("user", user.id, shop_user)
        return shop_user


class CommandsLeaveFlows(BaseMiddleware):
    """A typed command means the user moved on: any half-finished entry (an amount, a username) is
    left behind before the command runs, so the next plain text is not taken for that entry."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        text = getattr(event, "text", None)
        if state is not None and isinstance(text, str) and text.startswith("/") and await state.get_state():
            await state.clear()
        return await handler(event, data)
