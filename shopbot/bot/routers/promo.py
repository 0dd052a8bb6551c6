"""/promo CODE and the Promo code button: a user redeems a code, and hears exactly what it gave or why not."""

from __future__ import annotations

import asyncpg
from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, main_menu
from shopbot.bot.limits import PAYMENT
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.promo import PromoRefused, Redeemed, redeem
from shopbot.ledger import Ledger
from shopbot.locales import Translator
from shopbot.money import format_money


class PromoFlow(StatesGroup):
    code = State()  # the Promo code button asked for a code


def redeemed_text(t: Translator, redeemed: Redeemed, currency: str) -> str:
    if redeemed.kind == "credit":
        assert redeemed.amount is not None
        return t("promo-credited", code=redeemed.code, amount=format_money(redeemed.amount, currency))
    assert redeemed.percent is not None and redeemed.cap is not None
    return t(
        "promo-discount-saved",
        code=redeemed.code,
        percent=f"{redeemed.percent.normalize():f}",
        cap=format_money(redeemed.cap, currency),
    )


async def answer_code(
    message: Message, t: Translator, pool: asyncpg.Pool, ledger: Ledger, config: Config, typed: str
) -> None:
    assert message.from_user is not None
    try:
        redeemed = await redeem(pool, ledger, message.from_user.id, typed)
    except PromoRefused as refused:
        await message.answer(
            t(f"promo-refused-{refused.reason.replace('_', '-')}", code=refused.code), reply_markup=back_to_menu(t)
        )
        return
    await message.answer(redeemed_text(t, redeemed, config.shop.currency), reply_markup=main_menu(t))


async def on_promo_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    ledger: Ledger,
    config: Config,
) -> None:
    if not (command.args or "").strip():
        await state.set_state(PromoFlow.code)
        await message.answer(t("promo-ask"), reply_markup=back_to_menu(t))
        return
    await answer_code(message, t, pool, ledger, config, command.args or "")


async def on_promo_button(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(PromoFlow.code)
    await show(query, t("promo-ask"), back_to_menu(t))


async def on_code_text(
    message: Message, state: FSMContext, t: Translator, pool: asyncpg.Pool, ledger: Ledger, config: Config
) -> None:
    await state.set_state(None)
    await answer_code(message, t, pool, ledger, config, message.text or "")


def build_router() -> Router:
    router = Router(name=__name__)
    # A redemption moves money: it is limited like a payment.
    router.message.register(on_promo_command, Command("promo"), flags=PAYMENT)
    router.callback_query.register(on_promo_button, Menu.filter(F.action == "promo"))
    router.message.register(on_code_text, StateFilter(PromoFlow.code), F.text, ~F.text.startswith("/"), flags=PAYMENT)
    return router
