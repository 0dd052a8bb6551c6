"""The command list Telegram shows in its menu, in each language."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand

from shopbot.locales import DEFAULT_LANGUAGE, LANGUAGES, Texts

COMMANDS = (
    "start",
    "balance",
    "recharge",
    "buy_stars",
    "premium",
    "history",
    "referral",
    "promo",
    "language",
    "help",
    "paysupport",
)


async def register_commands(bot: Bot, texts: Texts) -> None:
    """setMyCommands for every language, plus the default list for everyone else."""
    for language in LANGUAGES:
        commands = [BotCommand(command=c, description=texts.get(language, f"cmd-{c}")) for c in COMMANDS]
        await bot.set_my_commands(commands, language_code=language)
        if language == DEFAULT_LANGUAGE:
            await bot.set_my_commands(commands)
