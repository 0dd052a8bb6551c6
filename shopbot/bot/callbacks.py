"""Callback data shared by every flow. Each flow keeps its own factories next to its router."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class Menu(CallbackData, prefix="menu"):
    """A main-menu button: home, balance, topup, stars, premium, history, language, help, promo, referral."""

    action: str
