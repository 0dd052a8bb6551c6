"""A user's whole journey through the real bot, as they would make it, in both languages and both
Telegram modes: top up with crypto, buy Stars for a friend, get them delivered, see it in history."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shopbot.config.schema import WebConfig
from shopbot.config.secret import Secret
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.telegram import TelegramEmulator
from tests.fulfilment.helpers import fund_wallet, wait_final
from tests.shop_harness import ShopUnderTest, free_port, running_shop

SAID = {
    "en": {"welcome": "Welcome", "credited": "5.00 USD", "queued": "is queued", "delivered": "Delivered"},
    "ru": {"welcome": "Добро пожаловать", "credited": "5.00 USD", "queued": "в очереди", "delivered": "Доставлено"},
}


def last_message(telegram: TelegramEmulator, user: int):  # type: ignore[no-untyped-def]
    return telegram.chat_messages(user)[-1]


def button_data(telegram: TelegramEmulator, user: int, prefix: str) -> tuple[int, str]:
    """The message id and callback data of the newest button whose data starts with prefix."""
    for message in reversed(telegram.chat_messages(user)):
        for button in message.reply_markup.buttons() if message.reply_markup else []:
            if button.callback_data and button.callback_data.startswith(prefix):
                return message.message_id, button.callback_data
    raise AssertionError(f"no button {prefix!r} in the chat")


async def said(telegram: TelegramEmulator, user: int, text: str, timeout: float = 20) -> str:
    """Wait until the bot sends (or edits into) a message containing text."""
    call = await telegram.wait_for_call(
        "sendMessage",
        timeout=timeout,
        predicate=lambda c: c.params["chat_id"] == user and text in str(c.params.get("text", "")),
    )
    return str(call.params["text"])


@pytest.mark.parametrize("mode", ["polling", "webhook"])
@pytest.mark.parametrize("language", ["en", "ru"])
async def test_top_up_buy_stars_for_a_friend_and_see_it_in_history(database_url: str, mode: str, language: str) -> None:
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    extra: dict[str, object] = {}
    if mode == "webhook":
        port = free_port()
        extra = {
            "web": WebConfig(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}"),
            "telegram_keys": {"mode": "webhook", "webhook_secret": Secret("journey-secret")},
        }
    async with running_shop(database_url, heleket=True, fragment=fragment, **extra) as shop:  # type: ignore[arg-type]
        fund_wallet(shop)
        await journey(shop, language)


async def journey(shop: ShopUnderTest, language: str) -> None:
    telegram, user, words = shop.telegram, 4242, SAID[language]
    assert shop.heleket is not None
    telegram.add_user(user, first_name="Ada", username="ada_buyer", language_code=language)

    telegram.send_text(user, "/start")
    await said(telegram, user, words["welcome"])

    telegram.send_text(user, "/recharge")
    await said(telegram, user, "")  # the amount choice
    message_id, preset = button_data(telegram, user, "acc_ta:5")  # the first preset: 5 USD
    telegram.press_button(user, message_id, preset)
    await telegram.wait_for_call("editMessageText", predicate=lambda c: c.params["chat_id"] == user)
    order_id = next(iter(shop.heleket.invoices.values())).order_id
    shop.heleket.pay(order_id)
    await said(telegram, user, words["credited"])

    telegram.send_text(user, "/buy_stars 50 @best_friend")
    message_id, confirm = await confirmation(shop, user)
    telegram.press_button(user, message_id, confirm)
    await telegram.wait_for_call("editMessageText", predicate=lambda c: words["queued"] in str(c.params["text"]))
    order = await shop.shop.pool.fetchval("SELECT id FROM orders WHERE user_id = $1", user)
    assert (await wait_final(shop, order)).state == "completed"
    await said(telegram, user, words["delivered"])

    telegram.send_text(user, "/history")
    history = await said(telegram, user, "5.00")
    assert "50" in history and "best_friend" in history
    assert (await shop.shop.ledger.balance(user)).available == Decimal("5.00") - Decimal("1.00")


async def confirmation(shop: ShopUnderTest, user: int) -> tuple[int, str]:
    """The confirmation screen the shortcut opens (after Fragment looked the friend up)."""
    await shop.telegram.wait_for_call(
        "editMessageText",
        timeout=20,
        predicate=lambda c: c.params["chat_id"] == user and "Best Friend" in str(c.params["text"]),
    )
    return button_data(shop.telegram, user, "buy-ok")


async def test_a_command_typed_mid_entry_leaves_that_entry_behind(database_url: str) -> None:
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    async with running_shop(database_url, fragment=fragment) as shop:
        telegram, user = shop.telegram, 4343
        telegram.add_user(user, first_name="Bo", username="bo_buyer")
        telegram.send_text(user, "/buy_stars")
        await said(telegram, user, "")
        message_id, other = button_data(telegram, user, "stars:0")  # "Other amount": the bot waits for a number
        telegram.press_button(user, message_id, other)
        await telegram.wait_for_call("answerCallbackQuery")
        telegram.send_text(user, "/balance")
        await said(telegram, user, "")
        telegram.send_text(user, "100")  # no longer an amount of stars: just text
        hint = await said(telegram, user, "")
        assert "did not understand" in hint
        assert not any(c.endpoint == "user_info" for c in fragment.calls)
