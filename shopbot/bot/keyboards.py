"""Keyboards more than one flow shows."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from shopbot.bot.callbacks import Menu
from shopbot.locales import Texts, Translator

MENU_ROWS = (("balance", "topup"), ("stars", "premium"), ("history", "language"), ("referral", "promo"), ("help",))
# Keyboards that depend on nothing but the language, built once per language of each `Texts`.
_built: weakref.WeakKeyDictionary[Texts, dict[tuple[str, str], InlineKeyboardMarkup]] = weakref.WeakKeyDictionary()


def button(t: Translator, key: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t(key), callback_data=data)


def per_language(t: Translator, name: str, build: Callable[[Translator], InlineKeyboardMarkup]) -> InlineKeyboardMarkup:
    """The keyboard `build(t)` makes, built once per language and then shared: callers never change it."""
    built = _built.get(t.texts)
    if built is None:
        built = _built[t.texts] = {}
    markup = built.get((t.language, name))
    if markup is None:
        markup = built[t.language, name] = build(t)
    return markup


def _main_menu(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(t, f"menu-{action}", Menu(action=action).pack()) for action in row] for row in MENU_ROWS
        ]
    )


def main_menu(t: Translator) -> InlineKeyboardMarkup:
    """Balance, Top up, Buy Stars, Gift Premium, History, Language, Help."""
    return per_language(t, "main_menu", _main_menu)


def _back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(t, "menu-home", Menu(action="home").pack())]])


def back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    return per_language(t, "back_to_menu", _back_to_menu)
