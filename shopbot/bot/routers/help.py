"""/help, the Help button and /paysupport (which Telegram's payment terms require): what the shop does,
its commands, and whom to write to."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.locales import Translator


def support_line(t: Translator, config: Config) -> str:
    contact = config.shop.support_contact.strip()
    return t("help-support", name=contact) if contact else t("help-no-support")


def help_text(t: Translator, config: Config) -> str:
    return f"{t('help-text')}\n\n{support_line(t, config)}"


def paysupport_text(t: Translator, config: Config) -> str:
    return f"{t('paysupport-text')}\n\n{support_line(t, config)}"


async def on_help_command(message: Message, t: Translator, config: Config) -> None:
    await show(message, help_text(t, config), back_to_menu(t))


async def on_help_button(query: CallbackQuery, t: Translator, config: Config) -> None:
    await show(query, help_text(t, config), back_to_menu(t))


async def on_paysupport_command(message: Message, t: Translator, config: Config) -> None:
    await show(message, paysupport_text(t, config), back_to_menu(t))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_help_command, Command("help"))
    router.message.register(on_paysupport_command, Command("paysupport"))
    router.callback_query.register(on_help_button, Menu.filter(F.action == "help"))
    return router
