"""Messages the shop sends on its own, not as a reply, through Telegram: a top-up arrived, an order moved
(`OrderNotifier`), an alert to the admins (`Alert`)."""

from __future__ import annotations

import logging

import asyncpg
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from shopbot.db.queries import queries
from shopbot.fulfilment.orders import Order
from shopbot.locales import Markup, Texts, pick_language
from shopbot.money import format_money
from shopbot.notify import Alert
from shopbot.payments.settle import Credited, Notify

log = logging.getLogger(__name__)


async def language_of(pool: asyncpg.Pool, user_id: int) -> str:
    row = await queries.users.get_user(pool, user_id)
    return pick_language(row["language"] if row else None)


def what_was_bought(texts: Texts, language: str, order: Order) -> Markup:
    if order.product == "stars":
        return Markup(texts.get(language, "order-what-stars", count=order.quantity, recipient=order.recipient))
    return Markup(texts.get(language, "order-what-premium", months=order.quantity, recipient=order.recipient))


def topup_notifier(bot: Bot, texts: Texts, pool: asyncpg.Pool) -> Notify:
    """Tells a user that their top-up was credited, and their balance now."""

    async def notify(credited: Credited) -> None:
        language = await language_of(pool, credited.user_id)
        balance = credited.available if credited.available is not None else credited.amount
        text = texts.get(
            language,
            "notice-topup",
            amount=format_money(credited.amount, credited.currency),
            balance=format_money(balance, credited.currency),
        )
        await bot.send_message(credited.user_id, text)

    return notify


class OrderNotices:
    """Tells the buyer how their order moves, as it moves, in their language."""

    def __init__(self, bot: Bot, texts: Texts, pool: asyncpg.Pool) -> None:
        self.bot = bot
        self.texts = texts
        self.pool = pool

    async def _send(self, order: Order, key: str, **args: object) -> None:
        language = await language_of(self.pool, order.user_id)
        what = what_was_bought(self.texts, language, order)
        await self.bot.send_message(order.user_id, self.texts.get(language, key, id=order.id, what=what, **args))

    async def delivered(self, order: Order) -> None:
        await self._send(order, "notice-delivered")

    async def refunded(self, order: Order, reason: str) -> None:
        language = await language_of(self.pool, order.user_id)
        because = Markup(self.texts.get(language, reason)) if self.texts.has(language, reason) else reason
        await self._send(order, "notice-refunded", reason=because, amount=format_money(order.price, order.currency))

    async def delayed(self, order: Order) -> None:
        await self._send(order, "notice-delayed")


def admin_alert(bot: Bot, admin_ids: tuple[int, ...]) -> Alert:
    """A message to every admin; one unreachable admin does not stop the others."""

    async def alert(text: str) -> None:
        for admin in admin_ids:
            try:
                await bot.send_message(admin, text)
            except TelegramAPIError as exc:
                log.warning("could not alert admin %s: %s", admin, exc.message)

    return alert
