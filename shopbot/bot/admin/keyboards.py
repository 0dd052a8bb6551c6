"""Keyboards the admin flows share."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from shopbot.bot.admin.callbacks import BROADCAST_NEW, AdminMenu
from shopbot.bot.keyboards import button
from shopbot.locales import Translator


def admin_menu(t: Translator) -> InlineKeyboardMarkup:
    """Dashboard; Users, Attention; Broadcast; Maintenance, Prices."""

    def item(key: str, action: str) -> InlineKeyboardButton:
        return button(t, key, AdminMenu(action=action).pack())

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [item("admin-menu-dashboard", "dash")],
            [item("admin-menu-users", "users"), item("admin-menu-attention", "attention")],
            [button(t, "admin-menu-broadcast", BROADCAST_NEW)],
            [item("admin-menu-maintenance", "maint"), item("admin-menu-prices", "prices")],
            [item("admin-menu-promo", "promo")],
        ]
    )


def back_to_admin(t: Translator) -> InlineKeyboardButton:
    return button(t, "admin-back", AdminMenu(action="home").pack())


def keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])
