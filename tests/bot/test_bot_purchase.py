"""Buying Stars and gifting Premium as a user does it: typing commands and pressing the buttons the bot sent,
through the real bot, the Telegram and Fragment emulators and a real database, in English and Russian."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio as redis
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Update as AiogramUpdate

from shopbot.bot.callbacks import Menu
from shopbot.bot.dispatcher import BotServices, build_dispatcher
from shopbot.bot.notices import what_was_bought
from shopbot.bot.routers.premium import Premium
from shopbot.bot.routers.purchase import Cancel, ForWhom
from shopbot.bot.routers.stars import Stars
from shopbot.config.schema import PricingConfig, RedisConfig
from shopbot.config.secret import Secret
from shopbot.fulfilment import products
from shopbot.fulfilment.orders import Order
from shopbot.fulfilment.products import PriceList
from shopbot.fulfilment.settings import ShopSettings
from shopbot.ledger.verify import verify_ledger
from shopbot.locales import Markup, Texts
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.telegram_wire import Message
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
TEXTS = Texts()


def plain(text: str) -> str:
    """A message as the user reads it: HTML tags gone, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class Chat:
    """One user's side of the conversation; remembers every button they pressed."""

    def __init__(self, shop: ShopUnderTest, user_id: int, language: str) -> None:
        self.shop = shop
        self.user_id = user_id
        self.language = language
        self.pressed: list[str] = []

    def t(self, key: str, **args: object) -> str:
        return TEXTS.get(self.language, key, **args)

    def say(self, text: str) -> None:
        self.shop.telegram.send_text(self.user_id, text)

    def press(self, message: Message, data: str) -> str:
        update = self.shop.telegram.press_button(self.user_id, message.message_id, data)
        assert update.callback_query is not None
        self.pressed.append(update.callback_query.id)
        return update.callback_query.id

    def forge(self, message: Message, data: str) -> str:
        """What a modified client can send: any callback data under one of the bot's messages. press_button
        presses only buttons the bot showed, so the update is built here as Telegram would deliver it."""
        update = self.shop.telegram.forge_press(self.user_id, message.message_id, data)
        assert update.callback_query is not None
        self.pressed.append(update.callback_query.id)
        return update.callback_query.id

    async def screen(self, key: str, **args: object) -> Message:
        """The bot message (new or edited) that shows this text."""
        return await self.showing(plain(self.t(key, **args)))

    async def showing(self, needle: str, timeout: float = 10) -> Message:
        with anyio.move_on_after(timeout):
            while True:
                for message in reversed(self.shop.telegram.chat_messages(self.user_id)):
                    if message.text and needle in message.text:
                        return message
                await anyio.sleep(0.02)
        shown = "\n".join(repr(m.text) for m in self.shop.telegram.chat_messages(self.user_id))
        raise AssertionError(f"no message shows {needle!r}; the chat:\n{shown}")

    async def answer_to(self, query_id: str) -> str | None:
        """The text a pressed button was answered with."""
        call = await self.shop.telegram.wait_for_call(
            "answerCallbackQuery", predicate=lambda c: c.params["callback_query_id"] == query_id
        )
        assert call.ok
        return call.params.get("text")

    async def assert_every_press_answered(self) -> None:
        telegram = self.shop.telegram
        with anyio.fail_after(5):
            while not set(self.pressed) <= {
                c.params["callback_query_id"] for c in telegram.calls if c.method == "answerCallbackQuery" and c.ok
            }:
                await anyio.sleep(0.02)
        assert [c for c in telegram.calls if c.method == "answerCallbackQuery" and not c.ok] == []
        apology = self.t("error-apology")
        assert not [c for c in telegram.calls if apology in str(c.params.get("text"))], "a handler failed"


def button_data(message: Message, prefix: str) -> str:
    """The callback data of the one button on message whose data starts with prefix."""
    found = [
        b.callback_data
        for b in (message.reply_markup.buttons() if message.reply_markup else [])
        if b.callback_data and b.callback_data.startswith(prefix)
    ]
    assert len(found) == 1, f"{prefix!r} among {found}"
    return found[0]


def has_button(message: Message, prefix: str) -> bool:
    return any(
        b.callback_data and b.callback_data.startswith(prefix)
        for b in (message.reply_markup.buttons() if message.reply_markup else [])
    )


async def orders_of(shop: ShopUnderTest, user_id: int) -> list[Order]:
    rows = await shop.shop.pool.fetch("SELECT id FROM orders WHERE user_id = $1 ORDER BY id", user_id)
    found = [await shop.shop.fulfilment.orders.get(row["id"]) for row in rows]
    return [order for order in found if order is not None]


async def placed(shop: ShopUnderTest, user_id: int, count: int = 1) -> list[Order]:
    """The user's orders once there are `count` of them."""
    with anyio.fail_after(5):
        while len(orders := await orders_of(shop, user_id)) < count:
            await anyio.sleep(0.02)
    return orders


async def balance(shop: ShopUnderTest, user_id: int) -> tuple[Decimal, Decimal]:
    money = await shop.shop.ledger.balance(user_id)
    return money.available, money.held


async def buyer(shop: ShopUnderTest, user_id: int, amount: str, language: str, username: str | None = None) -> Chat:
    await funded_buyer(shop, user_id, amount)
    shop.telegram.add_user(user_id, first_name=f"Buyer{user_id}", username=username, language_code=language)
    return Chat(shop, user_id, language)


async def queued(chat: Chat, order: Order) -> Message:
    return await chat.screen("purchase-queued", id=order.id, what=Markup(what_was_bought(TEXTS, chat.language, order)))


def stars(chat: Chat, count: int) -> Markup:
    return Markup(chat.t("purchase-stars", count=count))


def fragment_emulator() -> FragmentEmulator:
    emulator = FragmentEmulator()
    emulator.add_user("best_friend", "Best Friend")
    emulator.add_user("friend", "Fred <Friend>")
    emulator.add_user("pat_premium", "Пат Покупатель")
    return emulator


@pytest.fixture
async def shop(database_url: str) -> AsyncIterator[ShopUnderTest]:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        fund_wallet(shop)
        yield shop


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_stars_for_another_username_from_the_menu(shop: ShopUnderTest, language: str) -> None:
    chat = await buyer(shop, 601, "10", language)
    chat.say("/start")
    menu = await chat.showing(plain(chat.t("welcome", name="Buyer601")))
    chat.press(menu, Menu(action="stars").pack())
    packages = await chat.screen("stars-title")
    assert packages.message_id == menu.message_id  # the menu was edited, not answered with a new message
    chat.press(packages, Stars(count=50).pack())
    whom = await chat.screen("purchase-for-whom", what=stars(chat, 50), price="1.00 USD")
    chat.press(whom, ForWhom(product="stars", quantity=50, who="other").pack())
    await chat.screen("purchase-ask-username")
    chat.say("@best_friend")

    confirmation = await chat.screen(
        "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
    )
    assert plain(chat.t("purchase-balance-after", balance="9.00 USD")) in str(confirmation.text)
    assert await balance(shop, 601) == (D("10"), D("0"))  # nothing is held before Confirm
    chat.press(confirmation, button_data(confirmation, "buy-ok:stars:"))

    [order] = await placed(shop, 601)
    assert (order.product, order.quantity, order.recipient, order.price) == ("stars", 50, "best_friend", D("1.00"))
    assert (await queued(chat, order)).message_id == confirmation.message_id
    delivered = chat.t("notice-delivered", id=order.id, what=Markup(what_was_bought(TEXTS, language, order)))
    await shop.telegram.wait_for_call(
        "sendMessage", timeout=20, predicate=lambda c: c.params["chat_id"] == 601 and c.params["text"] == delivered
    )
    done = await wait_final(shop, order.id)
    assert done.state == "completed"
    assert shop.fragment is not None
    assert len(shop.fragment.payments) == 1 and len(shop.fragment.payments_for(str(done.fragment_order_id))) == 1
    assert await balance(shop, 601) == (D("9.00"), D("0"))
    await chat.assert_every_press_answered()


async def test_premium_for_myself_shows_progress_while_fragment_looks_me_up(shop: ShopUnderTest) -> None:
    chat = await buyer(shop, 602, "50", "ru", username="pat_premium")
    chat.say("/premium")
    durations = await chat.screen("premium-title")
    chat.press(durations, Premium(months=3).pack())
    whom = await chat.screen("purchase-for-whom", what=Markup(chat.t("purchase-premium", months=3)), price="14.99 USD")
    assert shop.fragment is not None
    shop.fragment.delay_next("user_info", 0.5)  # a slow Fragment: the user must see progress meanwhile
    looking = chat.t("purchase-looking-up", recipient="pat_premium")
    pressed = chat.press(whom, ForWhom(product="premium", quantity=3, who="me").pack())
    assert await chat.answer_to(pressed) == looking  # the spinner stops at once, saying what happens
    await chat.showing(looking)

    confirmation = await chat.screen(
        "purchase-summary",
        what=Markup(chat.t("purchase-premium", months=3)),
        name="Пат Покупатель",
        recipient="pat_premium",
        price="14.99 USD",
    )
    chat.press(confirmation, button_data(confirmation, "buy-ok:premium:"))
    [order] = await placed(shop, 602)
    await queued(chat, order)
    assert (order.product, order.quantity, order.recipient) == ("premium", 3, "pat_premium")
    assert (await wait_final(shop, order.id)).state == "completed"
    assert await balance(shop, 602) == (D("50") - D("14.99"), D("0"))
    await chat.assert_every_press_answered()


async def test_commands_with_arguments_jump_to_the_confirmation_and_cancel_holds_nothing(shop: ShopUnderTest) -> None:
    chat = await buyer(shop, 603, "30", "en")
    chat.say("/buy_stars 100 @friend")
    looking = chat.t("purchase-looking-up", recipient="friend")
    progress = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["text"] == looking)
    confirmation = await chat.screen(
        "purchase-summary", what=stars(chat, 100), name="Fred <Friend>", recipient="friend", price="2.00 USD"
    )
    assert confirmation.message_id == progress.result["message_id"]  # the progress message became the confirmation
    chat.press(confirmation, button_data(confirmation, "buy-ok:stars:"))
    [order] = await placed(shop, 603)
    await queued(chat, order)
    assert (order.quantity, order.recipient, order.price) == (100, "friend", D("2.00"))

    chat.say("/premium 6 @friend")
    premium = await chat.screen(
        "purchase-summary",
        what=Markup(chat.t("purchase-premium", months=6)),
        name="Fred <Friend>",
        recipient="friend",
        price="19.99 USD",
    )
    cancelled = chat.press(premium, button_data(premium, "buy-no:premium:"))
    assert await chat.answer_to(cancelled) == chat.t("purchase-cancelled")
    menu = await chat.screen("menu-title")
    assert menu.message_id == premium.message_id and has_button(menu, Menu(action="stars").pack())
    assert [o.id for o in await orders_of(shop, 603)] == [order.id]
    assert (await wait_final(shop, order.id)).state == "completed"
    assert await balance(shop, 603) == (D("28.00"), D("0"))
    await chat.assert_every_press_answered()


async def test_too_little_balance_shows_the_exact_shortfall_and_a_top_up_button(shop: ShopUnderTest) -> None:
    chat = await buyer(shop, 604, "0.50", "ru")
    chat.say("/buy_stars 100 @best_friend")
    short = await chat.screen("purchase-shortfall", balance="0.50 USD", shortfall="1.50 USD")
    assert plain(
        chat.t("purchase-summary", what=stars(chat, 100), name="Best Friend", recipient="best_friend", price="2.00 USD")
    ) in str(short.text)
    assert has_button(short, Menu(action="topup").pack()) and not has_button(short, "buy-ok:")
    assert await orders_of(shop, 604) == [] and await balance(shop, 604) == (D("0.50"), D("0"))

    # The balance shrinks between the confirmation and the Confirm press: the press shows the shortfall.
    later = await buyer(shop, 605, "3", "en")
    later.say("/buy_stars 100 @best_friend")
    confirmation = await later.screen("purchase-balance-after", balance="1.00 USD")
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
    elsewhere = await shop.shop.fulfilment.shopfront.place(605, quote)
    later.press(confirmation, button_data(confirmation, "buy-ok:stars:"))
    refused = await later.screen("purchase-shortfall", balance="1.00 USD", shortfall="1.00 USD")
    assert refused.message_id == confirmation.message_id and has_button(refused, Menu(action="topup").pack())
    assert [o.id for o in await orders_of(shop, 605)] == [elsewhere.id]
    await wait_final(shop, elsewhere.id)
    assert await balance(shop, 605) == (D("1.00"), D("0"))
    await chat.assert_every_press_answered()
    await later.assert_every_press_answered()


class QuoteClock:
    """The wall clock quotes are dated and aged by, which a test moves forward instead of waiting."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.monotonic = time.monotonic

    def time(self) -> float:
        return time.time() + self.offset


async def test_a_quote_keeps_its_price_until_quote_seconds_then_confirm_quotes_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = QuoteClock()
    monkeypatch.setattr(products, "time", clock)
    pricing = PricingConfig(quote_seconds=60)
    async with running_shop(database_url, fragment=fragment_emulator(), pricing=pricing) as shop:
        fund_wallet(shop)
        shopfront = shop.shop.fulfilment.shopfront
        # An admin's price change, as the admin screen makes it (stored, audited, heard by the shopfront).
        settings = ShopSettings(shop.shop.pool, shop.shop.config.shop, on_prices=shopfront.use_prices)
        premium = dict(shopfront.prices.premium)
        chat = await buyer(shop, 611, "10", "en")

        # Within quote_seconds a quote keeps its price, whatever the price does meanwhile.
        chat.say("/buy_stars 50 @best_friend")
        held = await chat.screen("purchase-balance-after", balance="9.00 USD")
        await settings.set_prices(PriceList(D("0.03"), premium), admin_id=1)
        clock.offset += 59
        chat.press(held, button_data(held, "buy-ok:stars:"))
        [first] = await placed(shop, 611)
        assert first.price == D("1.00")
        await queued(chat, first)
        assert (await wait_final(shop, first.id)).state == "completed"

        # Later than that, Confirm is not honoured: the order is quoted again at today's price.
        chat.say("/buy_stars 50 @best_friend")
        old = await chat.screen("purchase-balance-after", balance="7.50 USD")
        old_confirm = button_data(old, "buy-ok:stars:")
        await settings.set_prices(PriceList(D("0.04"), premium), admin_id=1)
        clock.offset += 61
        chat.press(old, old_confirm)
        requoted = await chat.screen("purchase-requoted")
        assert requoted.message_id == old.message_id
        assert plain(
            chat.t(
                "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="2.00 USD"
            )
        ) in str(requoted.text)
        assert plain(chat.t("purchase-balance-after", balance="7.00 USD")) in str(requoted.text)
        assert [o.id for o in await orders_of(shop, 611)] == [first.id]  # nothing bought,
        assert await balance(shop, 611) == (D("9.00"), D("0"))  # and nothing held for the old quote
        # The old confirmation buys nothing; only the new one does, at the new price.
        assert await chat.answer_to(chat.forge(requoted, old_confirm)) == chat.t("purchase-stale")
        new_confirm = button_data(requoted, "buy-ok:stars:")
        assert new_confirm != old_confirm
        chat.press(requoted, new_confirm)
        [_, second] = await placed(shop, 611, 2)
        assert second.price == D("2.00")
        await queued(chat, second)
        assert (await wait_final(shop, second.id)).state == "completed"
        assert await balance(shop, 611) == (D("7.00"), D("0"))
        assert (await verify_ledger(shop.shop.pool)).ok
        await chat.assert_every_press_answered()


@pytest.fixture(params=["memory", "redis"])
async def storage_shop(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[ShopUnderTest]:
    """The shop with its FSM in memory, or in Redis as several webhook instances share it."""
    extra: dict[str, object] = {}
    if request.param == "redis":
        url = request.getfixturevalue("redis_server_url")
        async with redis.Redis.from_url(url) as client:
            await client.flushdb()
        extra["redis"] = RedisConfig(url=Secret(url))
    async with running_shop(database_url, fragment=fragment_emulator(), **extra) as shop:
        fund_wallet(shop)
        yield shop


async def test_confirm_pressed_twice_buys_once(storage_shop: ShopUnderTest) -> None:
    shop = storage_shop
    chat = await buyer(shop, 606, "10", "en")
    chat.say("/buy_stars 50 @best_friend")
    confirmation = await chat.screen("purchase-balance-after", balance="9.00 USD")
    confirm = button_data(confirmation, "buy-ok:stars:")
    # Both presses arrive in one getUpdates batch, and the poller handles them concurrently.
    first, second = chat.press(confirmation, confirm), chat.press(confirmation, confirm)
    answers = sorted([await chat.answer_to(first) or "", await chat.answer_to(second) or ""])
    assert answers == sorted(["", chat.t("purchase-already-ordered")])
    [order] = await placed(shop, 606)
    await queued(chat, order)

    # Pressed again after the order was placed, before the screen changed (a slow Telegram edit).
    chat.say("/buy_stars 100 @best_friend")
    confirmation = await chat.screen("purchase-balance-after", balance="7.00 USD")
    confirm = button_data(confirmation, "buy-ok:stars:")
    shop.telegram.delay_next("editMessageText", 1.0)
    chat.press(confirmation, confirm)
    await placed(shop, 606, 2)
    assert await chat.answer_to(chat.press(confirmation, confirm)) == chat.t("purchase-already-ordered")
    orders = await orders_of(shop, 606)
    await queued(chat, orders[1])

    assert [(await wait_final(shop, o.id)).state for o in orders] == ["completed", "completed"]
    assert shop.fragment is not None and len(shop.fragment.payments) == 2
    assert await balance(shop, 606) == (D("7.00"), D("0"))
    await chat.assert_every_press_answered()


class SlowReads(RedisStorage):
    """FSM in Redis whose reads hand the loop over before returning: two instances reading the same
    confirmation before either writes, the worst interleaving webhook mode can produce."""

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data = await super().get_data(key)
        await anyio.sleep(0.2)
        return data


async def test_two_instances_sharing_redis_fsm_buy_once(database_url: str, redis_server_url: str) -> None:
    async with redis.Redis.from_url(redis_server_url) as client:
        await client.flushdb()
        async with running_shop(
            database_url, fragment=fragment_emulator(), redis=RedisConfig(url=Secret(redis_server_url))
        ) as shop:
            fund_wallet(shop)
            chat = await buyer(shop, 610, "10", "en")
            chat.say("/buy_stars 50 @best_friend")
            confirmation = await chat.screen("purchase-balance-after", balance="9.00 USD")
            confirm = button_data(confirmation, "buy-ok:stars:")
            running = shop.shop
            services = BotServices(
                running.config,
                running.pool,
                running.metrics,
                TEXTS,
                running.ledger,
                running.topups,
                running.fulfilment.shopfront,
                running.fulfilment.orders,
            )
            instances = [build_dispatcher(services, SlowReads(client)) for _ in range(2)]
            # The same Confirm pressed twice, each press delivered to another instance.
            updates = []
            for number in (1, 2):
                query_id = shop.telegram.open_query()  # delivered around the emulator, answered through it
                chat.pressed.append(query_id)
                updates.append(
                    AiogramUpdate.model_validate(
                        {
                            "update_id": 900_000 + number,
                            "callback_query": {
                                "id": query_id,
                                "from": msgspec.to_builtins(shop.telegram.users[610]),
                                "chat_instance": "1",
                                "message": msgspec.to_builtins(confirmation),
                                "data": confirm,
                            },
                        },
                        context={"bot": running.bot},
                    )
                )
            async with anyio.create_task_group() as group:
                for instance, update in zip(instances, updates, strict=True):
                    group.start_soon(instance.feed_update, running.bot, update)
            [order] = await orders_of(shop, 610)
            await queued(chat, order)
            assert sorted([await chat.answer_to(u.callback_query.id) or "" for u in updates if u.callback_query]) == [
                "",
                chat.t("purchase-already-ordered"),
            ]
            assert (await wait_final(shop, order.id)).state == "completed"
            assert shop.fragment is not None and len(shop.fragment.payments) == 1
            assert await balance(shop, 610) == (D("9.00"), D("0"))
            await chat.assert_every_press_answered()


async def test_forged_confirmations_change_nothing(shop: ShopUnderTest) -> None:
    victim = await buyer(shop, 607, "10", "en")
    victim.say("/buy_stars 50 @best_friend")
    confirmation = await victim.screen("purchase-balance-after", balance="9.00 USD")
    confirm = button_data(confirmation, "buy-ok:stars:")
    token = confirm.rsplit(":", 1)[1]

    thief = await buyer(shop, 608, "10", "ru")
    thief.say("/start")
    menu = await thief.showing(plain(thief.t("welcome", name="Buyer608")))
    stale = thief.t("purchase-stale")
    assert await thief.answer_to(thief.forge(menu, confirm)) == stale  # another user's token
    assert await thief.answer_to(thief.forge(menu, f"buy-ok:premium:{token}")) == stale
    assert await victim.answer_to(victim.forge(confirmation, "buy-ok:stars:made-up-token")) == victim.t(
        "purchase-stale"
    )
    assert await victim.answer_to(victim.forge(confirmation, f"buy-ok:premium:{token}")) == victim.t(
        "purchase-stale"
    )  # a real token under the wrong product
    assert await victim.answer_to(victim.forge(confirmation, "buy-ok:nonsense")) == victim.t("stale-button")
    assert await orders_of(shop, 607) == [] and await orders_of(shop, 608) == []
    assert await balance(shop, 607) == (D("10"), D("0")) and await balance(shop, 608) == (D("10"), D("0"))

    # None of that used up the real confirmation.
    victim.press(confirmation, confirm)
    [order] = await placed(shop, 607)
    await queued(victim, order)
    assert await orders_of(shop, 608) == []
    await victim.assert_every_press_answered()
    await thief.assert_every_press_answered()


async def test_wrong_amounts_and_usernames_get_clear_answers_and_a_retry(shop: ShopUnderTest) -> None:
    chat = await buyer(shop, 609, "10", "ru")  # no Telegram username of their own
    chat.say("/buy_stars 50 @nobody_here")
    await chat.screen("purchase-not-found", recipient="nobody_here")
    chat.say("@ab")
    await chat.screen("purchase-bad-username", typed="@ab")
    chat.say("@best_friend")
    confirmation = await chat.screen(
        "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
    )
    chat.press(confirmation, button_data(confirmation, "buy-no:stars:"))
    await chat.screen("menu-title")

    chat.say("/buy_stars")
    packages = await chat.screen("stars-title")
    chat.press(packages, Stars(count=0).pack())
    await chat.screen("stars-ask-count", min=50, max=1_000_000)
    for typed, key, limit in (
        ("много", "stars-not-a-number", {"example": 50}),
        ("10", "stars-too-few", {"min": 50}),
        ("2000000", "stars-too-many", {"max": 1_000_000}),
    ):
        chat.say(typed)
        await chat.screen(key, **limit)
    chat.say("75")
    whom = await chat.screen("purchase-for-whom", what=stars(chat, 75), price="1.50 USD")
    chat.press(whom, ForWhom(product="stars", quantity=75, who="me").pack())
    asked = await chat.screen("purchase-no-username")
    assert has_button(asked, Cancel(product="stars").pack())
    chat.say("best_friend")
    await chat.screen(
        "purchase-summary", what=stars(chat, 75), name="Best Friend", recipient="best_friend", price="1.50 USD"
    )

    chat.say("/buy_stars 10 @best_friend")
    await chat.screen("stars-too-few", min=50)
    chat.say("/premium 5")
    await chat.screen("premium-usage")
    assert await orders_of(shop, 609) == [] and await balance(shop, 609) == (D("10"), D("0"))
    await chat.assert_every_press_answered()
