"""/start and the main menu: the first thing every user sees, and the way home from every screen."""

from __future__ import annotations

import logging

import asyncpg
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import main_menu
from shopbot.bot.routers.referral import tell_inviter_joined
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.locales import Texts, Translator
from shopbot.payments.referrals import bind_invitee

log = logging.getLogger(__name__)


async def on_start_command(
    message: Message,
    t: Translator,
    state: FSMContext,
    command: CommandObject,
    pool: asyncpg.Pool,
    config: Config,
    bot: Bot,
    texts: Texts,
) -> None:
    """Welcome and the main menu. Whatever the user was in the middle of (an amount to type, a username to
    enter) is left behind. A referral payload binds a new user to the link's owner (a no-op otherwise);
    any other payload is ignored."""
    await state.clear()
    if command.args and message.from_user is not None:
        inviter = await bind_invitee(pool, config.referral, message.from_user.id, command.args)
        if inviter is not None:
            try:
                await tell_inviter_joined(bot, texts, pool, inviter)
            except TelegramAPIError as exc:  # the inviter blocked the bot: the binding stands
                log.warning("could not tell user %s someone joined through their link: %s", inviter, exc.message)
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(t("welcome", name=name), reply_markup=main_menu(t))


async def on_cancel_command(message: Message, t: Translator) -> None:
    """/cancel: whatever was being entered was already left behind (commands leave every flow)."""
    await message.answer(f"{t('flow-cancelled')}\n\n{t('menu-title')}", reply_markup=main_menu(t))


async def on_menu_home(query: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await show(query, t("menu-title"), main_menu(t))


def build_router() -> Router:
    """A fresh router: one per dispatcher, since aiogram attaches a router to one parent only."""
    router = Router(name=__name__)
    router.message.register(on_start_command, CommandStart())
    router.message.register(on_cancel_command, Command("cancel"))
    router.callback_query.register(on_menu_home, Menu.filter(F.action == "home"))
    return router
