"""Gifting Telegram Premium: /premium and the Gift Premium button, 3, 6 or 12 months, then the purchase."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, button
from shopbot.bot.routers import purchase
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.products import PREMIUM_MONTHS, Shopfront
from shopbot.ledger import Ledger
from shopbot.locales import Translator
from shopbot.money import format_money

PRODUCT = "premium"


class Premium(CallbackData, prefix="premium"):
    months: int


def premium_screen(t: Translator, config: Config, shopfront: Shopfront) -> tuple[str, InlineKeyboardMarkup]:
    """One button per duration, with its price."""
    rows = [
        [
            InlineKeyboardButton(
                text=t(
                    "premium-option",
                    months=months,
                    price=format_money(shopfront.price(PRODUCT, months), config.shop.currency),
                ),
                callback_data=Premium(months=months).pack(),
            )
        ]
        for months in PREMIUM_MONTHS
    ]
    rows.append([button(t, "menu-home", Menu(action="home").pack())])
    return t("premium-title"), InlineKeyboardMarkup(inline_keyboard=rows)


async def on_premium_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    ledger: Ledger,
) -> None:
    """/premium: the durations; /premium <months> [@username]: straight to the confirmation."""
    await purchase.leave_flow(state)
    if not command.args:
        await show(message, *premium_screen(t, config, shopfront))
        return
    parsed = purchase.split_arguments(command.args)
    months = purchase.whole_number(parsed[0]) if parsed else None
    if parsed is None or months is None or months not in PREMIUM_MONTHS:
        await message.answer(t("premium-usage"), reply_markup=back_to_menu(t))
        return
    await purchase.choose_recipient(message, t, state, shopfront, ledger, PRODUCT, months, parsed[1])


async def on_menu_premium(
    query: CallbackQuery, state: FSMContext, t: Translator, config: Config, shopfront: Shopfront
) -> None:
    await purchase.leave_flow(state)
    await show(query, *premium_screen(t, config, shopfront))


async def on_premium_button(
    query: CallbackQuery,
    callback_data: Premium,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.months not in PREMIUM_MONTHS:  # not a button the bot ever showed
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    await purchase.ask_for_whom(query, t, shopfront, config, PRODUCT, callback_data.months)


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = Router(name=__name__)
    router.message.register(on_premium_command, Command("premium"))
    router.callback_query.register(on_menu_premium, Menu.filter(F.action == "premium"))
    router.callback_query.register(on_premium_button, Premium.filter())
    router.include_router(purchase.build_router(PRODUCT))
    return router
