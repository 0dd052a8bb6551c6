"""Keyboards more than one flow shows."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from shopbot.bot.callbacks import Menu
from shopbot.locales import Translator

MENU_ROWS = (("balance", "topup"), ("stars", "premium"), ("history", "language"), ("referral", "promo"), ("help",))


def button(t: Translator, key: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t(key), callback_data=data)


def main_menu(t: Translator) -> InlineKeyboardMarkup:
    """Balance, Top up, Buy Stars, Gift Premium, History, Language, Help."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(t, f"menu-{action}", Menu(action=action).pack()) for action in row] for row in MENU_ROWS
        ]
    )


def back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(t, "menu-home", Menu(action="home").pack())]])
