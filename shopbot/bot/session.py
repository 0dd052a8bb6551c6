"""The aiogram `Bot`, pointed at whichever Bot API server the config names."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from shopbot.bot.telegram_circuit import TelegramCircuit
from shopbot.config.schema import TelegramConfig
from shopbot.guard.circuit import CircuitBreaker


@contextlib.asynccontextmanager
async def open_bot(config: TelegramConfig, breaker: CircuitBreaker | None = None) -> AsyncIterator[Bot]:
    """A Bot whose HTTP session is closed even when the shop is cancelled; every call it makes goes
    through `breaker` (the Bot API's circuit) when one is given."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_base.rstrip("/")))
    if breaker is not None:
        session.middleware(TelegramCircuit(breaker))
    bot = Bot(
        config.token.reveal(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    try:
        yield bot
    finally:
        # aiohttp's close sleeps 0.25 s by design; shielded so a cancelled shop still closes it.
        with anyio.move_on_after(5, shield=True):
            await session.close()
