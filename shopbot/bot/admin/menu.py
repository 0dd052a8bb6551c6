"""/admin and the admin menu; the router that holds every admin flow.

Each admin handler checks its own filters (a command, a button's prefix, a typed-input state) before
`IsAdmin`, so only an attempt at the admin area is checked and logged, not every message of every user.
A non-admin's attempt falls through to the ordinary bot: `/admin` gets the unknown-text hint, a forged
admin button the stale-button answer.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shopbot.bot.admin import attention, dashboard, maintenance, prices, promo, users
from shopbot.bot.admin.access import IsAdmin
from shopbot.bot.admin.callbacks import AdminFlow, AdminMenu
from shopbot.bot.admin.keyboards import admin_menu
from shopbot.bot.screens import show
from shopbot.locales import Translator


async def leave_admin_flow(state: FSMContext) -> None:
    if await state.get_state() in AdminFlow:
        await state.set_state(None)


async def on_admin_command(message: Message, state: FSMContext, t: Translator) -> None:
    await leave_admin_flow(state)
    await message.answer(t("admin-title"), reply_markup=admin_menu(t))


async def on_admin_home(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await leave_admin_flow(state)
    await show(query, t("admin-title"), admin_menu(t))


def build_router(admin_ids: tuple[int, ...]) -> Router:
    """The whole admin area, for `[telegram] admin_ids` only."""
    is_admin = IsAdmin(admin_ids)
    router = Router(name=__name__)
    router.message.register(on_admin_command, Command("admin"), is_admin)
    router.callback_query.register(on_admin_home, AdminMenu.filter(F.action == "home"), is_admin)
    for module in (dashboard, users, attention, maintenance, prices, promo):
        router.include_router(module.build_router(is_admin))
    return router
