"""Prices at runtime: the star price and the Premium prices, stored in shop_settings and audited.

A new price applies to quotes made from then on; an order keeps the price it was confirmed at.
"""

from __future__ import annotations

from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.admin.callbacks import AdminFlow, AdminMenu, PriceAction
from shopbot.admin.keyboards import back_to_admin, keyboard
from shopbot.admin.services import AdminServices
from shopbot.admin.settings import PREMIUM_PRICE_PLACES, STAR_PRICE_PLACES, BadPrice, parse_price, premium_months
from shopbot.bot.keyboards import button
from shopbot.bot.notices import format_money
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.products import PriceList
from shopbot.locales import Translator

ITEM = "admin_price_item"  # FSM data: which price is being typed


def item_name(t: Translator, item: str) -> str:
    return t("admin-price-star") if item == "star" else t("admin-price-premium", months=int(item))


def prices_screen(t: Translator, config: Config, admin: AdminServices, note: str = "") -> tuple[str, InlineKeyboardMarkup]:
    prices, configured, currency = admin.settings.prices, admin.settings.configured_prices, config.shop.currency
    lines = [t("admin-prices-title"), "",
             t("admin-prices-star", price=f"{prices.star_price} {currency}",
               configured=f"{configured.star_price} {currency}")]
    lines += [t("admin-prices-premium", months=int(months), price=format_money(prices.premium[months], currency),
                configured=format_money(configured.premium[months], currency)) for months in premium_months()]
    items = ["star", *premium_months()]
    return (note + "\n\n" if note else "") + "\n".join(lines), keyboard(
        [button(t, f"admin-price-button-{item}", PriceAction(item=item).pack()) for item in items],
        [button(t, "admin-prices-reset", PriceAction(item="reset").pack())],
        [back_to_admin(t)])


async def on_prices_menu(query: CallbackQuery, state: FSMContext, t: Translator, config: Config,
                         admin: AdminServices) -> None:
    await state.set_state(None)
    await admin.settings.refresh(force=True)
    await show(query, *prices_screen(t, config, admin))


async def on_price_button(query: CallbackQuery, callback_data: PriceAction, state: FSMContext, t: Translator,
                          config: Config, admin: AdminServices, callback_answer: CallbackAnswer) -> None:
    settings = admin.settings
    await settings.refresh(force=True)
    item = callback_data.item
    if item == "reset":
        if settings.prices != settings.configured_prices:
            await settings.set_prices(settings.configured_prices, admin_id=query.from_user.id)
        await show(query, *prices_screen(t, config, admin, t("admin-saved")))
        return
    if item != "star" and item not in premium_months():
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    current = settings.prices.star_price if item == "star" else settings.prices.premium[item]
    await state.set_state(AdminFlow.price)
    await state.update_data({ITEM: item})
    await show(query, t("admin-price-ask", item=item_name(t, item), price=f"{current} {config.shop.currency}",
                        places=STAR_PRICE_PLACES if item == "star" else PREMIUM_PRICE_PLACES),
               keyboard([button(t, "admin-cancel", AdminMenu(action="prices").pack())]))


async def on_price_text(message: Message, state: FSMContext, t: Translator, config: Config,
                        admin: AdminServices) -> None:
    assert message.from_user is not None
    item = (await state.get_data()).get(ITEM)
    if item != "star" and item not in premium_months():
        await state.set_state(None)
        await message.answer(t("admin-stale"), reply_markup=keyboard([back_to_admin(t)]))
        return
    try:
        price = parse_price(message.text or "", STAR_PRICE_PLACES if item == "star" else PREMIUM_PRICE_PLACES)
    except BadPrice as bad:
        await message.answer(t(bad.key, places=STAR_PRICE_PLACES if item == "star" else PREMIUM_PRICE_PLACES))
        return
    shop = config.shop
    if item == "star" and (price * shop.min_stars).quantize(Decimal("0.01")) <= 0:
        await message.answer(t("admin-price-star-too-low", count=shop.min_stars))
        return
    settings = admin.settings
    await settings.refresh(force=True)
    current = settings.prices
    if item == "star":
        wanted = PriceList(price, dict(current.premium))
    else:
        wanted = PriceList(current.star_price, {**current.premium, item: price})
    await state.set_state(None)
    if wanted != current:
        await settings.set_prices(wanted, admin_id=message.from_user.id)
    await show(message, *prices_screen(t, config, admin, t("admin-saved")))


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_prices_menu, AdminMenu.filter(F.action == "prices"), is_admin)
    router.callback_query.register(on_price_button, PriceAction.filter(), is_admin)
    router.message.register(on_price_text, StateFilter(AdminFlow.price), F.text, ~F.text.startswith("/"), is_admin)
    return router
