"""/language and the Language button: English or Russian, stored as the user's own choice."""

from __future__ import annotations

import asyncpg
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import button, main_menu
from shopbot.bot.middlewares import KnownUserMiddleware, ShopUser
from shopbot.bot.screens import show
from shopbot.db.queries import queries
from shopbot.locales import LANGUAGES, Texts, Translator

# Each language names itself, whatever the language of the screen.
LANGUAGE_NAMES = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}


class LanguageChoice(CallbackData, prefix="acc_lang"):
    language: str


def choice_keyboard(t: Translator, current: str) -> InlineKeyboardMarkup:
    choices = [
        InlineKeyboardButton(
            text=("✓ " if code == current else "") + LANGUAGE_NAMES[code],
            callback_data=LanguageChoice(language=code).pack(),
        )
        for code in LANGUAGES
    ]
    return InlineKeyboardMarkup(inline_keyboard=[choices, [button(t, "menu-home", Menu(action="home").pack())]])


async def on_language_command(message: Message, t: Translator, lang: str) -> None:
    await show(message, t("language-choose"), choice_keyboard(t, lang))


async def on_language_button(query: CallbackQuery, t: Translator, lang: str) -> None:
    await show(query, t("language-choose"), choice_keyboard(t, lang))


async def on_language_chosen(
    query: CallbackQuery,
    callback_data: LanguageChoice,
    t: Translator,
    texts: Texts,
    pool: asyncpg.Pool,
    users: KnownUserMiddleware,
    shop_user: ShopUser,
    callback_answer: CallbackAnswer,
) -> None:
    """Store the choice, put it in the cached profile (as the database returned it), answer in the new
    language."""
    language = callback_data.language
    if language not in LANGUAGES:  # a forged button: nothing to store
        callback_answer.text = t("stale-button")
        callback_answer.show_alert = True
        return
    stored = await queries.profile.set_language(pool, query.from_user.id, language)
    await users.language_stored(shop_user, stored)
    chosen = Translator(texts, language)
    callback_answer.text = chosen("language-changed")
    await show(query, f"{chosen('language-changed')}\n\n{chosen('menu-title')}", main_menu(chosen))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_language_command, Command("language"))
    router.callback_query.register(on_language_button, Menu.filter(F.action == "language"))
    router.callback_query.register(on_language_chosen, LanguageChoice.filter())
    return router
