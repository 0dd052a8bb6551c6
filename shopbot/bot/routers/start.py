"""/start and the main menu: the first thing every user sees, and the way home from every screen."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import main_menu
from shopbot.bot.screens import show
from shopbot.locales import Translator


async def on_start_command(message: Message, t: Translator, state: FSMContext) -> None:
    """Welcome and the main menu (a deep-link payload is accepted and ignored for now). Whatever the
    user was in the middle of (an amount to type, a username to enter) is left behind."""
    await state.clear()
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t("welcome", name=name), reply_markup=main_menu(t))


async def on_cancel_command(message: Message, t: Translator) -> None:
    """/cancel: whatever was being entered was already left behind (commands leave every flow)."""
    await message.answer(f"{t('flow-cancelled')}\n\n{t('menu-title')}", reply_markup=main_menu(t))


async def on_menu_home(query: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await show(query, t("menu-title"), main_menu(t))


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = Router(name=__name__)
    router.message.register(on_start_command, CommandStart())
    router.message.register(on_cancel_command, Command("cancel"))
    router.callback_query.register(on_menu_home, Menu.filter(F.action == "home"))
    return router
