"""Rate limits applied to the bot: per user, for all users together, and for payment actions.

`UpdateLimits` runs on every update after the user is known: a message draws from the user's
`messages` bucket, a button press from `operations`, and both from the shared `global` bucket.
`PaymentLimits` runs only for handlers flagged `payment` (creating a top-up, confirming a purchase).
Premium users get `premium_multiplier` times the limits, users first seen within `new_user_window`
get `new_user_multiplier` times; admins are never limited. A limited press gets its answer as a
toast (a press must be answered anyway); a limited message gets one chat message per wait, not one
per dropped update. Every refusal is counted in `telegram_bot_rate_limit_hits_total{limit}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.config.schema import RateLimitConfig
from shopbot.guard.limiter import Limit, RateLimiter, Verdict
from shopbot.locales import Translator
from shopbot.metrics import Metrics

log = logging.getLogger(__name__)
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
# The handler flag that marks a payment action: `router.message.register(..., flags=PAYMENT)`.
PAYMENT = {"payment": True}
# The text each limit's refusal shows.
TEXT = {
    "messages": "limit-slow-down",
    "operations": "limit-slow-down",
    "payments": "limit-payments",
    "global": "limit-busy",
}


class BotLimits:
    """The bot's limits from `[rate_limit]`, and who gets how much of them."""

    def __init__(
        self, limiter: RateLimiter, config: RateLimitConfig, admin_ids: tuple[int, ...], metrics: Metrics
    ) -> None:
        self.limiter = limiter
        self.config = config
        self.admins = frozenset(admin_ids)
        self.metrics = metrics
        self.messages = Limit("messages", config.messages_per_minute, config.burst)
        self.operations = Limit("operations", config.operations_per_minute, config.burst)
        self.payments = Limit("payments", config.payments_per_minute, config.burst)
        self.everyone = Limit("global", config.global_messages_per_minute, config.burst)
        self.new_user_window = timedelta(seconds=config.new_user_window)

    def multiplier(self, user: User, first_seen: datetime | None) -> float:
        factor = self.config.premium_multiplier if user.is_premium else 1.0
        new_user_window = self.new_user_window
        if first_seen is not None and new_user_window and datetime.now(UTC) - first_seen < new_user_window:
            factor *= self.config.new_user_multiplier
        return factor

    async def check(self, user: User, data: dict[str, Any], *limits: Limit) -> tuple[Limit, Verdict] | None:
        """The first of `limits` the user is over (the global one shared by all), or None."""
        if user.id in self.admins:
            return None
        factor = self.multiplier(user, _first_seen(data))
        for limit in limits:
            if limit is self.everyone:
                verdict = await self.limiter.take("global", limit)
            else:
                verdict = await self.limiter.take(f"{limit.name}:{user.id}", limit.scaled(factor))
            if not verdict.allowed:
                self.metrics.rate_limit_hits.labels(limit.name).inc()
                return limit, verdict
        return None

    async def tell(
        self,
        bot: Bot,
        t: Translator | None,
        user: User,
        event: TelegramObject,
        limit: Limit,
        verdict: Verdict,
        callback_answer: CallbackAnswer | None = None,
    ) -> None:
        """Say when to retry: as the press's answer, or once per wait in the chat."""
        text = t(TEXT[limit.name], seconds=verdict.retry_seconds) if t is not None else ""
        try:
            if isinstance(event, CallbackQuery):
                if callback_answer is not None:
                    callback_answer.text, callback_answer.show_alert = text, False
                else:
                    await bot.answer_callback_query(event.id, text=text)
            elif (
                isinstance(event, Message)
                and text
                and await self.limiter.first_notice(f"{limit.name}:{user.id}", verdict.retry_after)
            ):
                await bot.send_message(event.chat.id, text)
        except TelegramAPIError as exc:  # the user is limited either way; a failed notice is not an error
            log.info("could not tell user about a rate limit: %s", exc.message)


def _first_seen(data: dict[str, Any]) -> datetime | None:
    """When the shop first saw the sender (`KnownUserMiddleware` puts the profile in `shop_user`)."""
    return getattr(data.get("shop_user"), "first_seen_at", None)


class UpdateLimits(BaseMiddleware):
    """Outer middleware on updates: per-user messages / operations, and the global limit."""

    def __init__(self, limits: BotLimits) -> None:
        self.limits = limits

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if not isinstance(event, Update) or user is None or user.is_bot:
            return await handler(event, data)
        limits = self.limits
        inner: TelegramObject | None
        if event.message is not None or event.edited_message is not None:
            inner, own = event.message or event.edited_message, limits.messages
        elif event.callback_query is not None:
            inner, own = event.callback_query, limits.operations
        else:  # membership changes and the like are not requests
            return await handler(event, data)
        refused = await limits.check(user, data, own, limits.everyone)
        if refused is None:
            return await handler(event, data)
        assert inner is not None
        await limits.tell(data["bot"], data.get("t"), user, inner, *refused)
        return None


class PaymentLimits(BaseMiddleware):
    """Inner middleware: handlers flagged `payment` also draw from the user's payments bucket."""

    def __init__(self, limits: BotLimits) -> None:
        self.limits = limits

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or not get_flag(data, "payment"):
            return await handler(event, data)
        refused = await self.limits.check(user, data, self.limits.payments)
        if refused is None:
            return await handler(event, data)
        await self.limits.tell(
            data["bot"], data.get("t"), user, event, *refused, callback_answer=data.get("callback_answer")
        )
        return None
