"""Builds the aiogram Dispatcher: middlewares first, then one router per flow, the fallback last.

The bot's front door: the only module that knows the admin area, so the wiring above reaches the admin's
services and the broadcast sender through it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiogram import Dispatcher, Router
from aiogram.fsm.storage.base import BaseStorage
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from shopbot.bot.admin import broadcast_flow
from shopbot.bot.admin import menu as admin_menu
from shopbot.bot.admin.access import IsAdmin
from shopbot.bot.admin.broadcast_sender import BroadcastSender
from shopbot.bot.admin.maintenance import MaintenanceGate
from shopbot.bot.admin.services import AdminServices, admin_services
from shopbot.bot.error_handler import error_handler
from shopbot.bot.limits import BotLimits, PaymentLimits, UpdateLimits
from shopbot.bot.middlewares import CommandsLeaveFlows, KnownUserMiddleware
from shopbot.bot.routers import (
    balance,
    fallback,
    help,
    history,
    language,
    premium,
    promo,
    recharge,
    referral,
    stars,
    start,
)
from shopbot.cache import Cache
from shopbot.config.schema import Config
from shopbot.fulfilment.orders import Orders
from shopbot.fulfilment.products import Shopfront
from shopbot.guard.limiter import RateLimiter
from shopbot.guard.redis_link import RedisLink
from shopbot.ledger import Ledger
from shopbot.locales import Texts
from shopbot.metrics import Metrics
from shopbot.payments.topup import TopUps

__all__ = ["AdminServices", "BotServices", "BroadcastSender", "admin_services", "build_dispatcher"]


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
    limits: BotLimits | None = None  # None: in-process limits of this dispatcher's own
    cache: Cache | None = None  # None: an in-process cache of this dispatcher's own
    admin: AdminServices | None = None  # None: no admin area and no maintenance mode


def build_dispatcher(services: BotServices, storage: BaseStorage | None = None) -> Dispatcher:
    """A dispatcher wired to the shop's services."""
    dispatcher = Dispatcher(name="shopbot", storage=storage, **vars(services))
    cache = services.cache or Cache.in_process(services.config.cache, services.metrics)
    dispatcher["cache"] = cache
    users = KnownUserMiddleware(services.pool, services.texts, cache)
    dispatcher["users"] = users
    # Order matters. The user is recorded (and their language known) before any filter or handler runs;
    # every callback query is then answered even if its handler forgets to (no endless spinner).
    dispatcher.update.outer_middleware(users)
    limits = services.limits or BotLimits(
        RateLimiter(RedisLink(None), ttl=services.config.cache.rate_limit_ttl),
        services.config.rate_limit,
        services.config.telegram.admin_ids,
        services.metrics,
    )
    # Limits come after the user is known (premium, first seen) and before anything else touches them.
    dispatcher.update.outer_middleware(UpdateLimits(limits))
    if services.admin is not None:
        # After the limits (a user hammering the bot in maintenance is limited as always), before any flow.
        dispatcher.update.outer_middleware(MaintenanceGate(services.admin.settings, services.config.telegram.admin_ids))
    dispatcher.message.outer_middleware(CommandsLeaveFlows())
    dispatcher.callback_query.middleware(CallbackAnswerMiddleware())
    # Inside the answer middleware, so a refused payment press is answered with the wait.
    dispatcher.message.middleware(PaymentLimits(limits))
    dispatcher.callback_query.middleware(PaymentLimits(limits))
    dispatcher.errors.register(error_handler(services.texts, services.metrics))
    dispatcher.include_router(start.build_router())
    for router in flow_routers():
        dispatcher.include_router(router)
    # Broadcasts need nothing of the admin services: admins have them whether or not the rest is wired.
    dispatcher.include_router(broadcast_flow.build_router(IsAdmin(services.config.telegram.admin_ids)))
    if services.admin is not None:
        dispatcher.include_router(admin_menu.build_router(services.config.telegram.admin_ids))
    dispatcher.include_router(fallback.build_router())  # last: only what no flow took
    return dispatcher


def flow_routers() -> list[Router]:
    """The user flows, each its own router module."""
    return [
        module.build_router()
        for module in (balance, recharge, history, language, help, stars, premium, promo, referral)
    ]
