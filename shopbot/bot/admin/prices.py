"""Prices at runtime: the star price and the Premium prices, stored in shop_settings and audited, and
beside each its current cost and margin, the pricing mode, the TON rate and the last reprice.

A new price applies to quotes made from then on; an order keeps the price it was confirmed at.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
from aiogram import F, Router
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin.callbacks import AdminFlow, AdminMenu, PriceAction
from shopbot.bot.admin.dashboard import stamp
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.admin.margins import Margin, MarginReading
from shopbot.bot.admin.price_input import PREMIUM_PRICE_PLACES, STAR_PRICE_PLACES, BadPrice, parse_price, premium_months
from shopbot.bot.admin.services import AdminServices
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.fulfilment.products import PriceList
from shopbot.locales import Translator
from shopbot.money import format_money

ITEM = "admin_price_item"  # FSM data: which price is being typed
PRICING_ACTOR = "pricing"  # who the audit log names when the automatic prices changed


def item_name(t: Translator, item: str) -> str:
    return t("admin-price-star") if item == "star" else t("admin-price-premium", months=int(item))


def price_text(amount: Decimal, currency: str, product: str) -> str:
    """A star's price or cost to the hundredth of a cent (it is a fraction of one); Premium's to the cent."""
    places = Decimal("0.0001") if product == "stars" else Decimal("0.01")
    return f"{amount.quantize(places, rounding=ROUND_HALF_UP)} {currency}"


def cost_line(t: Translator, margin: Margin, currency: str, minimum: Decimal) -> str:
    if margin.cost is None or margin.percent is None:
        return t("admin-prices-cost-unknown")
    cost = price_text(margin.cost, currency, margin.product)
    key = "admin-prices-cost-low" if margin.percent < minimum else "admin-prices-cost"
    return t(key, cost=cost, margin=f"{margin.percent} %", minimum=f"{minimum} %")


async def pricing_lines(t: Translator, pool: asyncpg.Pool, config: Config, reading: MarginReading) -> list[str]:
    """The mode, the TON rate the costs were computed at, and the newest price change and who made it."""
    pricing, currency = config.pricing, config.shop.currency
    lines = [
        t("admin-prices-mode-auto", seconds=f"{pricing.refresh_seconds:g}", markup=f"{pricing.markup_percent:g}")
        if pricing.mode == "auto"
        else t("admin-prices-mode-fixed")
    ]
    rate = reading.rate
    lines.append(
        t(
            "admin-prices-rate",
            rate=f"{rate.rate.normalize():f} {currency}",
            when=stamp(datetime.fromtimestamp(rate.at, UTC)),
        )
        if rate is not None
        else t("admin-prices-rate-unknown")
    )
    last = await queries.admin_prices.last_price_change(pool)
    if last is None:
        lines.append(t("admin-prices-last-none"))
    else:
        by_admin = last["actor"] != PRICING_ACTOR and last["admin_id"] is not None
        who = t("admin-prices-by-admin", id=str(last["admin_id"])) if by_admin else t("admin-prices-by-pricing")
        lines.append(t("admin-prices-last", when=stamp(last["created_at"]), who=who))
    return lines


async def prices_screen(
    t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices, note: str = ""
) -> tuple[str, InlineKeyboardMarkup]:
    configured, currency = admin.settings.configured_prices, config.shop.currency
    minimum = Decimal(str(config.pricing.min_margin_percent))
    reading = await admin.margins.read()
    margins = {margin.product: margin for margin in reading.margins}
    star = margins["stars"]
    lines = [
        t("admin-prices-title"),
        *await pricing_lines(t, pool, config, reading),
        "",
        t("admin-prices-star", price=f"{star.price} {currency}", configured=f"{configured.star_price} {currency}"),
        cost_line(t, star, currency, minimum),
    ]
    for months in premium_months():
        margin = margins[f"premium_{months}"]
        lines += [
            t(
                "admin-prices-premium",
                months=int(months),
                price=format_money(margin.price, currency),
                configured=format_money(configured.premium[months], currency),
            ),
            cost_line(t, margin, currency, minimum),
        ]
    items = ["star", *premium_months()]
    return (note + "\n\n" if note else "") + "\n".join(lines), keyboard(
        [button(t, f"admin-price-button-{item}", PriceAction(item=item).pack()) for item in items],
        [button(t, "admin-prices-reset", PriceAction(item="reset").pack())],
        [back_to_admin(t)],
    )


async def on_prices_menu(
    query: CallbackQuery, state: FSMContext, t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices
) -> None:
    await state.set_state(None)
    await admin.settings.refresh()
    await show(query, *await prices_screen(t, pool, config, admin))


async def on_price_button(
    query: CallbackQuery,
    callback_data: PriceAction,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    config: Config,
    admin: AdminServices,
    callback_answer: CallbackAnswer,
) -> None:
    settings = admin.settings
    await settings.refresh()
    item = callback_data.item
    if item == "reset":
        if settings.prices != settings.configured_prices:
            await settings.set_prices(settings.configured_prices, admin_id=query.from_user.id)
        await show(query, *await prices_screen(t, pool, config, admin, t("admin-saved")))
        return
    if item != "star" and item not in premium_months():
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    current = settings.prices.star_price if item == "star" else settings.prices.premium[item]
    await state.set_state(AdminFlow.price)
    await state.update_data({ITEM: item})
    await show(
        query,
        t(
            "admin-price-ask",
            item=item_name(t, item),
            price=f"{current} {config.shop.currency}",
            places=STAR_PRICE_PLACES if item == "star" else PREMIUM_PRICE_PLACES,
        ),
        keyboard([button(t, "admin-cancel", AdminMenu(action="prices").pack())]),
    )


async def on_price_text(
    message: Message, state: FSMContext, t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices
) -> None:
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
    await settings.refresh()
    current = settings.prices
    if item == "star":
        wanted = PriceList(price, dict(current.premium))
    else:
        wanted = PriceList(current.star_price, {**current.premium, item: price})
    await state.set_state(None)
    if wanted != current:
        await settings.set_prices(wanted, admin_id=message.from_user.id)
    await show(message, *await prices_screen(t, pool, config, admin, t("admin-saved")))


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_prices_menu, AdminMenu.filter(F.action == "prices"), is_admin)
    router.callback_query.register(on_price_button, PriceAction.filter(), is_admin)
    router.message.register(on_price_text, StateFilter(AdminFlow.price), F.text, ~F.text.startswith("/"), is_admin)
    return router
