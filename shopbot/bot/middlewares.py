"""Dispatcher middlewares: what every update passes through before a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from shopbot.db.queries import queries
from shopbot.metrics import Metrics

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class KnownUserMiddleware(BaseMiddleware):
    """Records the sender of every update and hands handlers the stored profile as `shop_user`."""

    def __init__(self, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is not None and not user.is_bot:
            data["shop_user"] = await queries.users.upsert_user(
                self.pool,
                user.id,
                user.username,
                user.first_name,
                user.last_name,
                (user.language_code or "en")[:2],
                bool(user.is_premium),
            )
        return await handler(event, data)
