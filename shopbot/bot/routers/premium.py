"""Gifting Telegram Premium: /premium and the Gift Premium button, 3, 6 or 12 months, then the purchase."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.routers.purchase.flow import price_label
from shopbot.bot.routers.purchase.shelf import Screen, Shelf, options_screen
from shopbot.config.schema import Config
from shopbot.fulfilment.products import PREMIUM_MONTHS, Shopfront
from shopbot.locales import Translator

PRODUCT = "premium"


class Premium(CallbackData, prefix="premium"):
    months: int


def premium_screen(t: Translator, config: Config, shopfront: Shopfront) -> Screen:
    """One button per duration, with its price."""
    rows = [
        [
            InlineKeyboardButton(
                text=t("premium-option", months=months, price=price_label(shopfront, config, PRODUCT, months)),
                callback_data=Premium(months=months).pack(),
            )
        ]
        for months in PREMIUM_MONTHS
    ]
    return options_screen(t, "premium-title", rows)


def months_problem(t: Translator, config: Config, months: int) -> str | None:
    """Premium is sold for 3, 6 or 12 months; anything else gets the command's usage."""
    return None if months in PREMIUM_MONTHS else t("premium-usage")


SHELF = Shelf(
    product=PRODUCT,
    command="premium",
    screen=premium_screen,
    usage=lambda t, config: t("premium-usage"),
    unsold=months_problem,
)


async def on_premium_button(
    query: CallbackQuery,
    callback_data: Premium,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    callback_answer: CallbackAnswer,
) -> None:
    await SHELF.choose(query, t, config, shopfront, callback_answer, callback_data.months)


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    return SHELF.build_router(__name__, Premium, on_premium_button)
