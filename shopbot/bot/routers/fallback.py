"""Last in line: text nobody understood gets a hint, a button nobody knows gets a polite answer."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.keyboards import main_menu
from shopbot.locales import Translator


async def on_unknown_text(message: Message, t: Translator) -> None:
    await message.answer(t("unknown-text"), reply_markup=main_menu(t))


async def on_unknown_button(query: CallbackQuery, t: Translator, callback_answer: CallbackAnswer) -> None:
    # A stale or forged button: say so, change nothing.
    callback_answer.text = t("stale-button")
    callback_answer.show_alert = True


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_unknown_text)
    router.callback_query.register(on_unknown_button)
    return router
