"""Buying Telegram Stars: /buy_stars and the Buy Stars button, a package or another amount, then the purchase."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, button
from shopbot.bot.routers import purchase
from shopbot.bot.routers.purchase import PurchaseFlow
from shopbot.bot.screens import show
from shopbot.config.schema import Config, ShopConfig
from shopbot.fulfilment.products import Shopfront
from shopbot.ledger import Ledger
from shopbot.locales import Translator
from shopbot.money import format_money

PRODUCT = "stars"


class Stars(CallbackData, prefix="stars"):
    count: int  # 0: another amount, typed by the buyer


def packages(shop: ShopConfig) -> list[int]:
    return [count for count in shop.star_packages if shop.min_stars <= count <= shop.max_stars]


def example(shop: ShopConfig) -> int:
    """A count to show in a hint: the smallest package."""
    return (packages(shop) or [shop.min_stars])[0]


def stars_screen(t: Translator, config: Config, shopfront: Shopfront) -> tuple[str, InlineKeyboardMarkup]:
    """The packages with their prices, two to a row, then "Other amount"."""
    offers = [
        InlineKeyboardButton(
            text=t(
                "stars-package", count=count, price=format_money(shopfront.price(PRODUCT, count), config.shop.currency)
            ),
            callback_data=Stars(count=count).pack(),
        )
        for count in packages(config.shop)
    ]
    rows = [offers[i : i + 2] for i in range(0, len(offers), 2)]
    rows.append([button(t, "stars-other", Stars(count=0).pack())])
    rows.append([button(t, "menu-home", Menu(action="home").pack())])
    return t("stars-title"), InlineKeyboardMarkup(inline_keyboard=rows)


def count_problem(t: Translator, shop: ShopConfig, count: int) -> str | None:
    if count < shop.min_stars:
        return t("stars-too-few", min=shop.min_stars)
    if count > shop.max_stars:
        return t("stars-too-many", max=shop.max_stars)
    return None


async def ask_count(event: Message | CallbackQuery, t: Translator, state: FSMContext, text: str) -> None:
    """Wait for a typed number of Stars (again, after a mistake)."""
    await state.set_state(PurchaseFlow.stars_count)
    await show(event, text, InlineKeyboardMarkup(inline_keyboard=[[purchase.cancel_button(t, PRODUCT)]]))


async def on_buy_stars_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    ledger: Ledger,
) -> None:
    """/buy_stars: the packages; /buy_stars <count> [@username]: straight to the confirmation."""
    await purchase.leave_flow(state)
    if not command.args:
        await show(message, *stars_screen(t, config, shopfront))
        return
    parsed = purchase.split_arguments(command.args)
    count = purchase.whole_number(parsed[0]) if parsed else None
    if parsed is None or count is None:
        await message.answer(t("stars-usage", example=example(config.shop)), reply_markup=back_to_menu(t))
        return
    problem = count_problem(t, config.shop, count)
    if problem:
        await ask_count(message, t, state, problem)
        return
    await purchase.choose_recipient(message, t, state, shopfront, ledger, PRODUCT, count, parsed[1])


async def on_menu_stars(
    query: CallbackQuery, state: FSMContext, t: Translator, config: Config, shopfront: Shopfront
) -> None:
    await purchase.leave_flow(state)
    await show(query, *stars_screen(t, config, shopfront))


async def on_stars_button(
    query: CallbackQuery,
    callback_data: Stars,
    state: FSMContext,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.count == 0:
        shop = config.shop
        await ask_count(query, t, state, t("stars-ask-count", min=shop.min_stars, max=shop.max_stars))
        return
    problem = count_problem(t, config.shop, callback_data.count)
    if problem:  # a package the config no longer sells
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    await purchase.ask_for_whom(query, t, shopfront, config, PRODUCT, callback_data.count)


async def on_stars_count_text(
    message: Message, state: FSMContext, t: Translator, config: Config, shopfront: Shopfront
) -> None:
    count = purchase.whole_number(message.text or "")
    problem = (
        t("stars-not-a-number", example=example(config.shop)) if count is None else count_problem(t, config.shop, count)
    )
    if problem or count is None:
        await ask_count(message, t, state, problem or "")
        return
    await state.set_state(None)
    await purchase.ask_for_whom(message, t, shopfront, config, PRODUCT, count)


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = Router(name=__name__)
    router.message.register(on_buy_stars_command, Command("buy_stars"))
    router.callback_query.register(on_menu_stars, Menu.filter(F.action == "stars"))
    router.callback_query.register(on_stars_button, Stars.filter())
    router.message.register(on_stars_count_text, StateFilter(PurchaseFlow.stars_count), F.text, ~F.text.startswith("/"))
    router.include_router(purchase.build_router(PRODUCT))
    return router
