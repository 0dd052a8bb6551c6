"""Buying Telegram Stars: /buy_stars and the Buy Stars button, a package or another amount, then the purchase."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.keyboards import button
from shopbot.bot.routers.purchase import PurchaseFlow, ask_for_whom, cancel_button
from shopbot.bot.routers.purchase.flow import price_label
from shopbot.bot.routers.purchase.shelf import Screen, Shelf, options_screen, whole_number
from shopbot.bot.screens import show
from shopbot.config.schema import Config, ShopConfig
from shopbot.fulfilment.products import Shopfront
from shopbot.locales import Translator

PRODUCT = "stars"


class Stars(CallbackData, prefix="stars"):
    count: int  # 0: another amount, typed by the buyer


def packages(shop: ShopConfig) -> list[int]:
    return [count for count in shop.star_packages if shop.min_stars <= count <= shop.max_stars]


def example(shop: ShopConfig) -> int:
    """A count to show in a hint: the smallest package."""
    return (packages(shop) or [shop.min_stars])[0]


def stars_screen(t: Translator, config: Config, shopfront: Shopfront) -> Screen:
    """The packages with their prices, two to a row, then "Other amount"."""
    offers = [
        InlineKeyboardButton(
            text=t("stars-package", count=count, price=price_label(shopfront, config, PRODUCT, count)),
            callback_data=Stars(count=count).pack(),
        )
        for count in packages(config.shop)
    ]
    rows = [offers[i : i + 2] for i in range(0, len(offers), 2)]
    rows.append([button(t, "stars-other", Stars(count=0).pack())])
    return options_screen(t, "stars-title", rows)


def count_problem(t: Translator, config: Config, count: int) -> str | None:
    shop = config.shop
    if count < shop.min_stars:
        return t("stars-too-few", min=shop.min_stars)
    if count > shop.max_stars:
        return t("stars-too-many", max=shop.max_stars)
    return None


async def ask_count(event: Message | CallbackQuery, t: Translator, state: FSMContext, text: str) -> None:
    """Wait for a typed number of Stars (again, after a mistake)."""
    await state.set_state(PurchaseFlow.stars_count)
    await show(event, text, InlineKeyboardMarkup(inline_keyboard=[[cancel_button(t, PRODUCT)]]))


SHELF = Shelf(
    product=PRODUCT,
    command="buy_stars",
    screen=stars_screen,
    usage=lambda t, config: t("stars-usage", example=example(config.shop)),
    unsold=count_problem,
    refuse_typed=ask_count,  # a count out of bounds: the buyer types another
)


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
    await SHELF.choose(query, t, config, shopfront, callback_answer, callback_data.count)


async def on_stars_count_text(
    message: Message, state: FSMContext, t: Translator, config: Config, shopfront: Shopfront
) -> None:
    count = whole_number(message.text or "")
    problem = (
        t("stars-not-a-number", example=example(config.shop)) if count is None else count_problem(t, config, count)
    )
    if problem or count is None:
        await ask_count(message, t, state, problem or "")
        return
    await state.set_state(None)
    await ask_for_whom(message, t, shopfront, config, PRODUCT, count)


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = SHELF.build_router(__name__, Stars, on_stars_button)
    router.message.register(on_stars_count_text, StateFilter(PurchaseFlow.stars_count), F.text, ~F.text.startswith("/"))
    return router
