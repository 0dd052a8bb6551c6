"""Builds the aiogram Dispatcher: middlewares first, then one router per flow."""

from __future__ import annotations

import asyncpg
from aiogram import Dispatcher

from shopbot.bot.middlewares import KnownUserMiddleware
from shopbot.bot.routers import start
from shopbot.metrics import Metrics


def build_dispatcher(pool: asyncpg.Pool, metrics: Metrics) -> Dispatcher:
    """A dispatcher wired to the shop's pool and metrics."""
    dispatcher = Dispatcher(name="shopbot")
    # Outer middleware on the update: the user is recorded before any filter or handler runs,
    # so handlers can rely on the stored profile (language, first-seen time).
    dispatcher.update.outer_middleware(KnownUserMiddleware(pool, metrics))
    dispatcher.include_router(start.build_router())
    return dispatcher
