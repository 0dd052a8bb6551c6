"""Handling one update, the same way whether it came by long poll or by webhook."""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, cast

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update

from shopbot.bot.commands import register_commands
from shopbot.locales import Texts
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)


class KeepResponseTypes(BaseRequestMiddleware):
    """Keeps alive the model each Bot API method's answer is parsed with (`Response[Message]` and the like).

    aiogram parses every answer with `Response[method.__returning__]`, a model pydantic builds on first use
    and remembers only weakly; each full garbage collection drops it, and the next call built it again
    (about 4 ms of CPU, a sixth of the shop's time under load). Held here, each is built once per process."""

    def __init__(self) -> None:
        self.kept: dict[type[TelegramMethod[Any]], type[Response[Any]]] = {}

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self.kept:
            # What aiogram's check_response builds; a variable type argument is beyond a static checker.
            self.kept[kind] = cast(Any, Response)[method.__returning__]
        return await make_request(bot, method)


def keep_response_types(bot: Bot) -> None:
    """Hold the answers' models for every call `bot` makes (once per Bot session)."""
    if not any(isinstance(middleware, KeepResponseTypes) for middleware in bot.session.middleware):
        bot.session.middleware(KeepResponseTypes())


_start_up_frozen = False


def freeze_start_up_objects() -> None:
    """Leave what start-up built (modules, schemas, routers: hundreds of thousands of objects that live as long
    as the process) out of the collector's full passes, once per process. Otherwise every full pass walks
    them all, stalling every update in flight for tens of milliseconds; objects made later are collected
    as before."""
    global _start_up_frozen
    if not _start_up_frozen:
        _start_up_frozen = True
        gc.freeze()


class UpdateHandler:
    """Feeds updates to the dispatcher; a failing update is logged and counted, never fatal."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, metrics: Metrics) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.metrics = metrics
        keep_response_types(bot)

    async def start(self, texts: Texts) -> None:
        """Startup hooks, and the command menu in every language (a failure there is not fatal); then the
        start-up objects are set aside from garbage collection."""
        await self.dispatcher.emit_startup(bot=self.bot)
        try:
            await register_commands(self.bot, texts)
        except TelegramAPIError as exc:
            log.warning("could not register the bot's commands: %s", exc.message)
        freeze_start_up_objects()

    async def stop(self) -> None:
        await self.dispatcher.emit_shutdown(bot=self.bot)

    async def handle(self, update: Update) -> None:
        self.metrics.updates.inc()
        if update.message is not None:
            self.metrics.messages.inc()
        started = time.perf_counter()
        try:
            response = await self.dispatcher.feed_update(self.bot, update)
            if isinstance(response, TelegramMethod):
                await self.bot(response)
        except Exception:
            self.metrics.errors.labels("handler").inc()
            log.exception("update %d failed", update.update_id)
        finally:
            self.metrics.response_time.observe(time.perf_counter() - started)
