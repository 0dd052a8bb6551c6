"""/history and the History button: the user's top-ups and orders, newest first, ten to a page.

An order is one line with its state (its hold, capture and release are bookkeeping, not three
events to the buyer); every other movement of the user's money is a line with its signed amount.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import asyncpg
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.db.queries import queries
from shopbot.locales import Markup, Translator
from shopbot.money import format_money

PAGE_SIZE = 10
LAST_PAGE_ASKED = 1_000_000  # a forged page number larger than this is the last page anyway
ORDER_STATE_TEXT = {"completed": "history-order-delivered", "refunded": "history-order-refunded"}


class HistoryPage(CallbackData, prefix="acc_hp"):
    page: int


def signed_money(amount: Decimal, currency: str) -> str:
    return ("+" if amount > 0 else "−") + format_money(abs(amount), currency)


def entry_text(t: Translator, row: asyncpg.Record) -> str:
    if row["kind"] == "order":
        if row["product"] == "stars":
            what = t("order-what-stars", count=row["quantity"], recipient=row["recipient"])
        else:
            what = t("order-what-premium", months=row["quantity"], recipient=row["recipient"])
        key = ORDER_STATE_TEXT.get(row["state"], "history-order-pending")
        return t(key, id=row["id"], what=Markup(what), price=format_money(row["amount"], row["currency"]))
    key = {
        "recharge": "history-topup",
        "bonus": "history-bonus",
        "referral_bonus": "history-referral-bonus",
        "refund": "history-refund",
        "purchase": "history-purchase",
    }.get(row["kind"], "history-adjustment")
    return t(key, amount=signed_money(row["amount"], row["currency"]))


async def history_screen(
    t: Translator, pool: asyncpg.Pool, user_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    rows = await queries.history.history_page(pool, user_id, max(0, min(page, LAST_PAGE_ASKED)), PAGE_SIZE)
    shown, total = rows[0]["page"], rows[0]["total"]
    pages = max(1, -(-total // PAGE_SIZE))
    title = t("history-title") + (f" · {shown + 1}/{pages}" if pages > 1 else "")
    if total == 0:
        text = f"{title}\n\n{t('history-empty')}"
    else:
        lines = [
            f"<code>{row['created_at'].astimezone(UTC):%Y-%m-%d %H:%M}</code>  {entry_text(t, row)}" for row in rows
        ]
        text = "\n".join((title, "", *lines, "", t("history-times")))
    paging = []
    if shown > 0:
        paging.append(button(t, "history-prev", HistoryPage(page=shown - 1).pack()))
    if shown < pages - 1:
        paging.append(button(t, "history-next", HistoryPage(page=shown + 1).pack()))
    keyboard = [paging] if paging else []
    keyboard.append([button(t, "menu-home", Menu(action="home").pack())])
    return text, InlineKeyboardMarkup(inline_keyboard=keyboard)


async def on_history_command(message: Message, t: Translator, pool: asyncpg.Pool) -> None:
    assert message.from_user is not None
    await show(message, *await history_screen(t, pool, message.from_user.id, 0))


async def on_history_button(query: CallbackQuery, t: Translator, pool: asyncpg.Pool) -> None:
    await show(query, *await history_screen(t, pool, query.from_user.id, 0))


async def on_history_page(query: CallbackQuery, callback_data: HistoryPage, t: Translator, pool: asyncpg.Pool) -> None:
    await show(query, *await history_screen(t, pool, query.from_user.id, callback_data.page))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_history_command, Command("history"))
    router.callback_query.register(on_history_button, Menu.filter(F.action == "history"))
    router.callback_query.register(on_history_page, HistoryPage.filter())
    return router
