"""What Stars and Premium share before the purchase: a screen of priced options, opened from the menu or by
the product's command; the command with arguments, straight to the confirmation; an option pressed, on to
"for whom". A `Shelf` holds what tells one product from the other; its methods are the shared steps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, button
from shopbot.bot.routers.purchase import build_router as purchase_router
from shopbot.bot.routers.purchase.flow import leave_flow
from shopbot.bot.routers.purchase.recipient import ask_for_whom, choose_recipient
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.products import Shopfront
from shopbot.locales import Translator

Screen = tuple[str, InlineKeyboardMarkup]


def whole_number(text: str) -> int | None:
    """ "250" or "1 000" as an int; None for anything else (signs, decimals, words)."""
    digits = "".join(text.split())
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 9 else None


def typed_order(args: str | None) -> tuple[int, str | None] | None:
    """`<quantity> [@username]` after a command; None when it is not that shape."""
    parts = (args or "").split()
    if not 1 <= len(parts) <= 2:
        return None
    quantity = whole_number(parts[0])
    return None if quantity is None else (quantity, parts[1] if len(parts) == 2 else None)


def options_screen(t: Translator, title: str, rows: list[list[InlineKeyboardButton]]) -> Screen:
    """A product's title, its options (each with its price), then Home."""
    home = [button(t, "menu-home", Menu(action="home").pack())]
    return t(title), InlineKeyboardMarkup(inline_keyboard=[*rows, home])


async def say_why(message: Message, t: Translator, state: FSMContext, problem: str) -> None:
    """A typed quantity the shop does not sell: the reason, and back to the menu."""
    await message.answer(problem, reply_markup=back_to_menu(t))


@dataclass(frozen=True)
class Shelf:
    """One product's way into the purchase."""

    product: str  # also the main menu's action that opens the shelf
    command: str  # without the slash
    screen: Callable[[Translator, Config, Shopfront], Screen]
    usage: Callable[[Translator, Config], str]  # how the command is typed
    unsold: Callable[[Translator, Config, int], str | None]  # why a quantity is not sold; None: it is
    # What a command with a quantity the shop does not sell gets.
    refuse_typed: Callable[[Message, Translator, FSMContext, str], Awaitable[None]] = say_why

    async def on_command(
        self,
        message: Message,
        command: CommandObject,
        state: FSMContext,
        t: Translator,
        config: Config,
        shopfront: Shopfront,
    ) -> None:
        """/command: the options; /command <quantity> [@username]: straight to the confirmation."""
        await leave_flow(state)
        if not command.args:
            await show(message, *self.screen(t, config, shopfront))
            return
        typed = typed_order(command.args)
        if typed is None:
            await message.answer(self.usage(t, config), reply_markup=back_to_menu(t))
            return
        quantity, recipient = typed
        problem = self.unsold(t, config, quantity)
        if problem:
            await self.refuse_typed(message, t, state, problem)
            return
        await choose_recipient(message, t, state, shopfront, self.product, quantity, recipient)

    async def on_menu(
        self, query: CallbackQuery, state: FSMContext, t: Translator, config: Config, shopfront: Shopfront
    ) -> None:
        await leave_flow(state)
        await show(query, *self.screen(t, config, shopfront))

    async def choose(
        self,
        query: CallbackQuery,
        t: Translator,
        config: Config,
        shopfront: Shopfront,
        callback_answer: CallbackAnswer,
        quantity: int,
    ) -> None:
        """An option pressed: on to "for whom", unless it is not one the shop sells now (a stale button)."""
        if self.unsold(t, config, quantity):
            callback_answer.text, callback_answer.show_alert = t("stale-button"), True
            return
        await ask_for_whom(query, t, shopfront, config, self.product, quantity)

    def build_router(self, name: str, option: type[CallbackData], on_option: Callable[..., Awaitable[None]]) -> Router:
        """The command, the menu button and `on_option` for the `option` buttons, then the purchase itself."""
        router = Router(name=name)
        router.message.register(self.on_command, Command(self.command))
        router.callback_query.register(self.on_menu, Menu.filter(F.action == self.product))
        router.callback_query.register(on_option, option.filter())
        router.include_router(purchase_router(self.product))
        return router
