"""Messages the shop sends a user on its own, not as a reply: a top-up arrived, an order moved."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from html import escape

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from shopbot.fulfilment.orders import Order
from shopbot.payments.settle import Credited, Notify

log = logging.getLogger(__name__)


def format_money(amount: Decimal, currency: str) -> str:
    """Two decimals for display; the ledger keeps full precision."""
    return f"{amount.quantize(Decimal('0.01'))} {currency}"


def topup_notifier(bot: Bot) -> Notify:
    """Tells a user that their top-up was credited, and their balance now."""

    async def notify(credited: Credited) -> None:
        text = f"✅ Your top-up of <b>{format_money(credited.amount, credited.currency)}</b> has arrived."
        if credited.available is not None:
            text += f"\nBalance: <b>{format_money(credited.available, credited.currency)}</b>"
        await bot.send_message(credited.user_id, text)

    return notify


def describe_order(order: Order) -> str:
    what = f"{order.quantity} Telegram Stars" if order.product == "stars" else f"Telegram Premium for {order.quantity} months"
    return f"{what} for @{escape(order.recipient)}"


class OrderNotices:
    """Tells the buyer how their order moves, as it moves."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def delivered(self, order: Order) -> None:
        await self.bot.send_message(order.user_id, f"🎉 Delivered: {describe_order(order)}.")

    async def refunded(self, order: Order, reason: str) -> None:
        await self.bot.send_message(
            order.user_id,
            f"↩️ Order #{order.id} ({describe_order(order)}) was refunded: {escape(reason)}.\n"
            f"{format_money(order.price, order.currency)} is back on your balance.")

    async def delayed(self, order: Order) -> None:
        await self.bot.send_message(
            order.user_id,
            f"⏳ Order #{order.id} ({describe_order(order)}) is delayed: Fragment is not answering right now. "
            "It stays in line and will be delivered as soon as it is back; your money is safe.")


def admin_alert(bot: Bot, admin_ids: tuple[int, ...]) -> Callable[[str], Awaitable[None]]:
    """A message to every admin; one unreachable admin does not stop the others."""

    async def alert(text: str) -> None:
        for admin in admin_ids:
            try:
                await bot.send_message(admin, text)
            except TelegramAPIError as exc:
                log.warning("could not alert admin %s: %s", admin, exc.message)

    return alert
