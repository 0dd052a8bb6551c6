"""Handling one update, the same way whether it came by long poll or by webhook."""

from __future__ import annotations

import logging
import time

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from shopbot.bot.commands import register_commands
from shopbot.locales import Texts
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)


class UpdateHandler:
    """Feeds updates to the dispatcher; a failing update is logged and counted, never fatal."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, metrics: Metrics) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.metrics = metrics

    async def start(self, texts: Texts) -> None:
        """Startup hooks, and the command menu in every language (a failure there is not fatal)."""
        await self.dispatcher.emit_startup(bot=self.bot)
        try:
            await register_commands(self.bot, texts)
        except TelegramAPIError as exc:
            log.warning("could not register the bot's commands: %s", exc.message)

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
