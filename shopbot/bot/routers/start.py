"""/start: the first thing every user sees."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import CommandStart
from aiogram.types import Message


async def on_start_command(message: Message) -> None:
    """Greet the user by name; the full menu arrives with the bot's own flows."""
    name = escape(message.from_user.first_name if message.from_user else "there")
    await message.answer(f"Welcome to the shop, <b>{name}</b>!")


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = Router(name=__name__)
    router.message.register(on_start_command, CommandStart())
    return router
