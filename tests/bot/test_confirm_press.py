"""Pressing Confirm answers from what the shop already knows: the order is placed and shown as queued without
a single request to Fragment (the recipient was looked up for the confirmation; the payer asks Fragment later,
on its own), through the real bot, the Telegram and Fragment emulators and a real database."""

from __future__ import annotations

from decimal import Decimal

from starlette.types import ASGIApp, Receive, Scope, Send

from tests.bot.test_bot_purchase import balance, button_data, buyer, fragment_emulator, placed, queued, stars
from tests.fulfilment.helpers import fund_wallet
from tests.shop_harness import running_shop

D = Decimal


class Arrivals:
    """ASGI middleware on the Fragment emulator: the path of every request as it arrives (the emulator's own
    call log has a request only once it is answered)."""

    def __init__(self, app: ASGIApp, paths: list[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


async def test_confirm_places_the_order_without_asking_fragment(database_url: str) -> None:
    emulator = fragment_emulator()
    arrived: list[str] = []
    emulator.app.add_middleware(Arrivals, paths=arrived)
    async with running_shop(database_url, fragment=emulator) as shop:
        fund_wallet(shop)
        chat = await buyer(shop, 1401, "10", "en")
        chat.say("/buy_stars 50 @best_friend")
        confirmation = await chat.screen(
            "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
        )
        assert "/v3/user_info" in arrived
        # The payer waits while Fragment's circuit is open, so whatever reaches Fragment from the press to the
        # 'queued' screen came from the press itself.
        breaker = shop.shop.fulfilment.breaker
        for _ in range(shop.shop.config.circuit_breaker.failure_threshold):
            await breaker.record_failure()
        assert await breaker.state() == "open"
        before = len(arrived)

        chat.press(confirmation, button_data(confirmation, "buy-ok:stars:"))
        [order] = await placed(shop, 1401)
        shown = await queued(chat, order)
        await chat.assert_every_press_answered()
        assert arrived[before:] == []
        assert shown.message_id == confirmation.message_id  # the confirmation became the 'queued' screen

        assert order.state == "queued" and await balance(shop, 1401) == (D("9.00"), D("1.00"))
