"""Builds the aiogram Dispatcher: middlewares first, then one router per flow, the fallback last."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiogram import Dispatcher, Router
from aiogram.fsm.storage.base import BaseStorage
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from shopbot.bot.errors import error_handler
from shopbot.bot.middlewares import CommandsLeaveFlows, KnownUserMiddleware
from shopbot.bot.routers import balance, fallback, help, history, language, premium, recharge, stars, start
from shopbot.config.schema import Config
from shopbot.fulfilment.orders import Orders
from shopbot.fulfilment.products import Shopfront
from shopbot.ledger import Ledger
from shopbot.locales import Texts
from shopbot.metrics import Metrics
from shopbot.payments.topup import TopUps


@dataclass
class BotServices:
    """What handlers may use, injected by name (aiogram's workflow data)."""

    config: Config
    pool: asyncpg.Pool
    metrics: Metrics
    texts: Texts
    ledger: Ledger
    topups: TopUps
    shopfront: Shopfront
    orders: Orders


def build_dispatcher(services: BotServices, storage: BaseStorage | None = None) -> Dispatcher:
    """A dispatcher wired to the shop's services."""
    dispatcher = Dispatcher(name="shopbot", storage=storage, **vars(services))
    users = KnownUserMiddleware(services.pool, services.texts, ttl=services.config.cache.user_ttl)
    dispatcher["users"] = users
    # Order matters. The user is recorded (and their language known) before any filter or handler runs;
    # every callback query is then answered even if its handler forgets to (no endless spinner).
    dispatcher.update.outer_middleware(users)
    dispatcher.message.outer_middleware(CommandsLeaveFlows())
    dispatcher.callback_query.middleware(CallbackAnswerMiddleware())
    dispatcher.errors.register(error_handler(services.texts, services.metrics))
    dispatcher.include_router(start.build_router())
    for router in flow_routers():
        dispatcher.include_router(router)
    dispatcher.include_router(fallback.build_router())  # last: only what no flow took
    return dispatcher


def flow_routers() -> list[Router]:
    """The user flows, each its own router module."""
    return [module.build_router() for module in (balance, recharge, history, language, help, stars, premium)]
