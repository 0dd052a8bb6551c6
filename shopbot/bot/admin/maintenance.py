"""Maintenance mode: users get a message instead of the bot; admins use the bot as always.

Only the bot's answers to users stop. Money already on its way is untouched: Heleket webhooks and
the reconciler still credit top-ups, the order worker still pays and verifies orders, and users are
still told when a top-up arrives or an order is delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

from aiogram import BaseMiddleware, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User

from shopbot.bot.admin.callbacks import AdminFlow, AdminMenu, MaintenanceAction
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.admin.services import AdminServices
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.fulfilment.settings import Maintenance, ShopSettings
from shopbot.locales import Translator

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
MAX_MESSAGE = 1000


def maintenance_message(t: Translator | None, settings: ShopSettings, *, html: bool = True) -> str:
    """The admin's message (escaped for a chat message; a press's answer is plain text), else the standard one."""
    custom = settings.maintenance.message
    if custom:
        return escape(custom) if html else custom
    return t("maintenance-default") if t is not None else "The shop is under maintenance. Please come back later."


class MaintenanceGate(BaseMiddleware):
    """Outer middleware on updates, after the user is known and the limits applied: while maintenance mode
    is on, a non-admin's message gets the maintenance message and a press gets it as its answer. It reads the
    settings the shop holds in memory (`ShopSettings.watch` keeps them fresh), never the database."""

    def __init__(self, settings: ShopSettings, admin_ids: tuple[int, ...]) -> None:
        self.settings = settings
        self.admins = frozenset(admin_ids)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if (
            not self.settings.maintenance.on
            or not isinstance(event, Update)
            or user is None
            or user.is_bot
            or user.id in self.admins
        ):
            return await handler(event, data)
        t, bot = data.get("t"), data["bot"]
        try:
            if event.callback_query is not None:
                text = maintenance_message(t, self.settings, html=False)[:200]  # Telegram's limit for an answer
                await bot.answer_callback_query(event.callback_query.id, text=text, show_alert=True)
            elif event.message is not None:
                await bot.send_message(event.message.chat.id, maintenance_message(t, self.settings))
            else:  # not a request from the user (a membership change and the like)
                return await handler(event, data)
        except TelegramAPIError:
            pass  # the user is turned away either way
        return None


def maintenance_screen(t: Translator, settings: ShopSettings, note: str = "") -> tuple[str, Any]:
    current = settings.maintenance
    text = t(
        "admin-maintenance-on" if current.on else "admin-maintenance-off",
        message=current.message or t("maintenance-default"),
    )
    switch = MaintenanceAction(action="off" if current.on else "on").pack()
    return (note + "\n\n" if note else "") + text, keyboard(
        [button(t, "admin-maintenance-turn-off" if current.on else "admin-maintenance-turn-on", switch)],
        [button(t, "admin-maintenance-set-text", MaintenanceAction(action="text").pack())],
        [back_to_admin(t)],
    )


async def on_maintenance_menu(query: CallbackQuery, t: Translator, admin: AdminServices) -> None:
    await admin.settings.refresh()
    await show(query, *maintenance_screen(t, admin.settings))


async def on_maintenance_button(
    query: CallbackQuery, callback_data: MaintenanceAction, state: FSMContext, t: Translator, admin: AdminServices
) -> None:
    settings = admin.settings
    await settings.refresh()
    action = callback_data.action
    if action in ("on", "off"):
        wanted = action == "on"
        if settings.maintenance.on != wanted:
            await settings.set_maintenance(
                Maintenance(wanted, settings.maintenance.message), admin_id=query.from_user.id
            )
        await show(query, *maintenance_screen(t, settings, t("admin-saved")))
    elif action == "text":
        await state.set_state(AdminFlow.maintenance_text)
        await show(query, t("admin-maintenance-ask-text", max=MAX_MESSAGE), keyboard([back_to_admin(t)]))
    else:
        await show(query, *maintenance_screen(t, settings))


async def on_maintenance_text(message: Message, state: FSMContext, t: Translator, admin: AdminServices) -> None:
    assert message.from_user is not None
    text = (message.text or "").strip()
    if not text or len(text) > MAX_MESSAGE:
        await message.answer(t("admin-maintenance-bad-text", max=MAX_MESSAGE))
        return
    await state.set_state(None)
    settings = admin.settings
    await settings.refresh()
    await settings.set_maintenance(
        Maintenance(settings.maintenance.on, "" if text == "-" else text), admin_id=message.from_user.id
    )
    await show(message, *maintenance_screen(t, settings, t("admin-saved")))


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_maintenance_menu, AdminMenu.filter(F.action == "maint"), is_admin)
    router.callback_query.register(on_maintenance_button, MaintenanceAction.filter(), is_admin)
    router.message.register(
        on_maintenance_text, StateFilter(AdminFlow.maintenance_text), F.text, ~F.text.startswith("/"), is_admin
    )
    return router
