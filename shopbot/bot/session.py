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

from shopbot.config.schema import TelegramConfig


@contextlib.asynccontextmanager
async def open_bot(config: TelegramConfig) -> AsyncIterator[Bot]:
    """A Bot whose HTTP session is closed even when the shop is cancelled."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_base.rstrip("/")))
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
