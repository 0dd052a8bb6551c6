"""Messages the shop sends a user on its own, not as a reply: a top-up arrived, an order moved."""

from __future__ import annotations

from decimal import Decimal

from aiogram import Bot

from shopbot.payments.settle import Credited, Notify


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
