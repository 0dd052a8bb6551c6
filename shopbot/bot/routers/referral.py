"""/referral and the Invite button: the user's link, how many joined through it and what it earned; and
the messages an inviter gets when someone joins and when a bonus is paid."""

from __future__ import annotations

from datetime import UTC
from urllib.parse import quote

import asyncpg
from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import button
from shopbot.bot.notices import language_of
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.ledger import Ledger
from shopbot.locales import Texts, Translator
from shopbot.money import format_money
from shopbot.payments.referrals import PAYLOAD_PREFIX, Bonus, BonusNotify, referral_code

RECENT_BONUSES = 5


async def referral_link(bot: Bot, pool: asyncpg.Pool, user_id: int) -> str:
    me = await bot.me()  # cached by aiogram after the first call
    return f"https://t.me/{me.username}?start={PAYLOAD_PREFIX}{await referral_code(pool, user_id)}"


async def referral_screen(
    t: Translator, bot: Bot, pool: asyncpg.Pool, config: Config, user_id: int
) -> tuple[str, InlineKeyboardMarkup]:
    home = [button(t, "menu-home", Menu(action="home").pack())]
    if not config.referral.enabled:
        return t("referral-off"), InlineKeyboardMarkup(inline_keyboard=[home])
    link = await referral_link(bot, pool, user_id)
    summary = await queries.referrals.referral_summary(pool, user_id)
    currency = config.shop.currency
    lines = [
        t("referral-title"),
        "",
        t("referral-explain", percent=f"{config.referral.percent.normalize():f}", months=config.referral.months),
        "",
        t("referral-link", link=link),
        "",
        t("referral-joined", count=summary["invited"]),
        t("referral-earned", amount=format_money(summary["earned"], currency), count=summary["bonuses"]),
    ]
    recent = await queries.referrals.recent_referral_bonuses(pool, user_id, RECENT_BONUSES)
    if recent:
        lines += ["", t("referral-recent")]
        lines += [
            f"<code>{row['created_at'].astimezone(UTC):%Y-%m-%d}</code>  "
            + t(
                "referral-entry-flagged" if row["flagged"] else "referral-entry",
                amount=format_money(row["amount"], row["currency"]),
            )
            for row in recent
        ]
    share = f"https://t.me/share/url?url={quote(link, safe='')}&text={quote(t('referral-share-text'), safe='')}"
    keyboard = [[InlineKeyboardButton(text=t("referral-share"), url=share)], home]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=keyboard)


async def on_referral_command(message: Message, t: Translator, bot: Bot, pool: asyncpg.Pool, config: Config) -> None:
    assert message.from_user is not None
    await show(message, *await referral_screen(t, bot, pool, config, message.from_user.id))


async def on_referral_button(query: CallbackQuery, t: Translator, bot: Bot, pool: asyncpg.Pool, config: Config) -> None:
    await show(query, *await referral_screen(t, bot, pool, config, query.from_user.id))


async def tell_inviter_joined(bot: Bot, texts: Texts, pool: asyncpg.Pool, inviter_id: int) -> None:
    """Someone joined through the inviter's link (no name: the invitee did not agree to be shown)."""
    language = await language_of(pool, inviter_id)
    await bot.send_message(inviter_id, texts.get(language, "notice-referral-joined"))


def bonus_notifier(bot: Bot, texts: Texts, pool: asyncpg.Pool, ledger: Ledger) -> BonusNotify:
    """Tells an inviter, in their language, that a friend's top-up earned them a bonus, and their balance."""

    async def notify(bonus: Bonus) -> None:
        language = await language_of(pool, bonus.inviter_id)
        balance = (await ledger.balance(bonus.inviter_id)).available
        await bot.send_message(
            bonus.inviter_id,
            texts.get(
                language,
                "notice-referral-bonus",
                amount=format_money(bonus.amount, bonus.currency),
                balance=format_money(balance, bonus.currency),
            ),
        )

    return notify


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_referral_command, Command("referral"))
    router.callback_query.register(on_referral_button, Menu.filter(F.action == "referral"))
    return router
