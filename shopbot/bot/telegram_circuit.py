"""The Bot API's circuit breaker, as an aiogram request middleware on the bot's session.

Telegram's own trouble counts as a failure: no connection, a timeout, a 5xx, an answer that is not
the Bot API's JSON (a proxy's error page). Any answer of the Bot API is a success, refusals included
(4xx, 429 flood control): Telegram is there. A long poll that ends with no updates is an answer too.
Updates a long poll brings back while the circuit is open are not taken (see `__call__`).
While the circuit is open a call fails at once with `TelegramCircuitOpen`, a `TelegramNetworkError`,
so every caller (the poller's backoff, notices, handlers) treats it as the network problem it stands for.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramNetworkError, TelegramServerError
from aiogram.methods import (
    DeleteMyCommands,
    DeleteWebhook,
    GetUpdates,
    Response,
    SetMyCommands,
    SetWebhook,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType

from shopbot.guard.circuit import OPEN, CircuitBreaker

FAILURES = (TelegramNetworkError, TelegramServerError, ClientDecodeError)
# The calls a starting shop makes once before it serves: always tried and never counted, so an instance
# that boots while the shared circuit is open (another instance opened it) still comes up.
START_UP = (DeleteWebhook, SetWebhook, SetMyCommands, DeleteMyCommands)
_unguarded: ContextVar[bool] = ContextVar("telegram_unguarded", default=False)


class TelegramCircuitOpen(TelegramNetworkError):
    """Telegram failed too often lately; this call was not made."""

    def __init__(self, method: TelegramMethod[Any], retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(method=method, message=f"Telegram circuit open; retry in {max(1, math.ceil(retry_after))} s")


class TelegramCircuit(BaseRequestMiddleware):
    """Fails calls fast while the circuit is open and reports each call's outcome to it."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if _unguarded.get() or isinstance(method, START_UP):
            return await make_request(bot, method)
        circuit = await self.breaker.status()
        if circuit.state == OPEN:
            raise TelegramCircuitOpen(method, circuit.retry_after)
        try:
            response = await make_request(bot, method)
        except FAILURES:
            await self.breaker.record_failure()
            raise
        except TelegramAPIError:
            await self.breaker.record_success()
            raise
        state = await self.breaker.record_success()
        if state == OPEN and isinstance(method, GetUpdates) and response:
            # A long poll that began before the circuit opened brought updates whose replies would all fail
            # fast. Left unconfirmed, Telegram delivers them again to the first poll the circuit lets through.
            raise TelegramCircuitOpen(method, await self.breaker.retry_after())
        return response


@contextlib.contextmanager
def unguarded() -> Iterator[None]:
    """Calls made inside neither wait for the circuit nor count toward it: the health check's getMe, which
    must say whether Telegram answers now, not what the circuit remembers."""
    token = _unguarded.set(True)
    try:
        yield
    finally:
        _unguarded.reset(token)


def unguarded_check(check: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    """`check`, run outside the circuit."""

    async def run() -> object:
        with unguarded():
            return await check()

    return run
