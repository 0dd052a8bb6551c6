"""Showing a screen: menus edit the message they came from instead of sending new ones."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message


async def show(event: Message | CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the message a button belongs to; send a new one for a typed command."""
    if isinstance(event, CallbackQuery) and isinstance(event.message, Message):
        try:
            await event.message.edit_text(text, reply_markup=markup)
        except TelegramBadRequest as exc:
            if "message is not modified" not in exc.message:
                raise
        return
    if isinstance(event, Message):
        await event.answer(text, reply_markup=markup)
    elif event.bot is not None:  # a button under a message too old to edit: answer in a new one
        await event.bot.send_message(event.from_user.id, text, reply_markup=markup)
