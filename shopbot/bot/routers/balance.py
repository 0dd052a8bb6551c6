"""/balance and the Balance button: what the user can spend, and what is reserved for their orders."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import button, per_language
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.ledger import Ledger
from shopbot.locales import Translator
from shopbot.money import format_money


async def balance_text(t: Translator, ledger: Ledger, config: Config, user_id: int) -> str:
    balance = await ledger.balance(user_id)
    currency = config.shop.currency
    lines = [t("balance-available", balance=format_money(balance.available, currency))]
    if balance.held > 0:
        lines.append(t("balance-held", amount=format_money(balance.held, currency)))
    if balance.available <= 0 and balance.held <= 0:
        lines.append(t("balance-empty-hint"))
    return "\n".join(lines)


def balance_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return per_language(t, "balance", _balance_keyboard)


def _balance_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(t, "menu-topup", Menu(action="topup").pack()),
                button(t, "menu-history", Menu(action="history").pack()),
            ],
            [button(t, "menu-home", Menu(action="home").pack())],
        ]
    )


async def on_balance_command(message: Message, t: Translator, ledger: Ledger, config: Config) -> None:
    assert message.from_user is not None
    await show(message, await balance_text(t, ledger, config, message.from_user.id), balance_keyboard(t))


async def on_balance_button(query: CallbackQuery, t: Translator, ledger: Ledger, config: Config) -> None:
    await show(query, await balance_text(t, ledger, config, query.from_user.id), balance_keyboard(t))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_balance_command, Command("balance"))
    router.callback_query.register(on_balance_button, Menu.filter(F.action == "balance"))
    return router
