"""The account flows as a user lives them: balance, top-up, history, language, help — in English and Russian.

Every test drives the real bot through the Telegram emulator: it types commands and presses only
buttons the bot really sent (a forged button is planted through the Bot API, as a modified client
could send any callback data), reads the chat as it stands, and ends by checking that every pressed
button was answered exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from aiogram.types import InlineKeyboardButton as BotButton
from aiogram.types import InlineKeyboardMarkup as BotKeyboard

from shopbot.config.schema import ShopConfig
from shopbot.db.queries import queries
from shopbot.ledger import MovementType, SystemAccount
from shopbot.sandbox.telegram import RecordedCall
from shopbot.sandbox.telegram_wire import InlineKeyboardButton
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
TOAST_LIMIT = 200  # Telegram refuses a longer answerCallbackQuery text


@dataclass(frozen=True)
class Screen:
    """A bot message as the user sees it now: its text (markup rendered) and its buttons."""

    message_id: int
    text: str
    buttons: list[InlineKeyboardButton]


class Customer:
    """One Telegram user in a private chat with the shop, doing what a person can do."""

    def __init__(self, shop: ShopUnderTest, user_id: int, *, language: str = "en", first_name: str = "Ann") -> None:
        self.shop = shop
        self.id = user_id
        self.pressed: list[str] = []
        self.sent: list[RecordedCall] = []  # the bot's sendMessage calls to this user, as they were read
        shop.telegram.add_user(user_id, first_name=first_name, language_code=language)

    async def send(self, text: str) -> Screen:
        """Type a message; the bot's reply (a new message)."""
        self.shop.telegram.send_text(self.id, text)
        return await self.next_message()

    async def next_message(self) -> Screen:
        call = await self.shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == self.id)
        assert call.ok, call.description
        self.sent.append(call)
        return self.message(call.result["message_id"])

    def message(self, message_id: int) -> Screen:
        """A bot message as it stands now, edits applied."""
        message = next(m for m in self.shop.telegram.chat_messages(self.id) if m.message_id == message_id)
        keyboard = message.reply_markup.buttons() if message.reply_markup else []
        return Screen(message.message_id, message.text or "", keyboard)

    async def press(self, message: Screen, label: str) -> RecordedCall:
        """Press the button showing `label` under the message; the answer to the callback query."""
        data = find_button(message, label).callback_data
        assert data is not None, f"{label!r} is not a callback button"
        return await self.press_data(message, data)

    async def press_data(self, message: Screen, data: str) -> RecordedCall:
        query = self.shop.telegram.press_button(self.id, message.message_id, data).callback_query
        assert query is not None
        query_id = query.id
        self.pressed.append(query_id)
        return await self.shop.telegram.wait_for_call(
            "answerCallbackQuery", predicate=lambda c: c.params["callback_query_id"] == query_id
        )

    async def forged_button(self, data: str) -> Screen:
        """A message carrying a button the shop never offered this user (what a modified client can send)."""
        markup = BotKeyboard(inline_keyboard=[[BotButton(text="forged", callback_data=data)]])
        sent = await self.shop.shop.bot.send_message(self.id, "a planted button", reply_markup=markup)
        await self.shop.telegram.wait_for_call(
            "sendMessage",
            predicate=lambda c: c.params["chat_id"] == self.id and c.result["message_id"] == sent.message_id,
        )
        return self.message(sent.message_id)


def find_button(screen: Screen, label: str) -> InlineKeyboardButton:
    found = [b for b in screen.buttons if label in b.text]
    assert len(found) == 1, f"no single button {label!r} under {screen.text!r}: {[b.text for b in screen.buttons]}"
    return found[0]


def assert_every_callback_answered(shop: ShopUnderTest, *customers: Customer) -> None:
    """Each pressed button got exactly one successful answer, short enough for Telegram, and nothing else was
    answered."""
    answers = [c for c in shop.telegram.calls if c.method == "answerCallbackQuery"]
    assert sorted(c.params["callback_query_id"] for c in answers) == sorted(q for c in customers for q in c.pressed)
    assert all(c.ok for c in answers)
    assert all(len(c.params.get("text") or "") <= TOAST_LIMIT for c in answers)


async def give(
    shop: ShopUnderTest, user_id: int, amount: str, key: str, type: MovementType = MovementType.BONUS
) -> None:
    source = SystemAccount.HELEKET_CLEARING if type == MovementType.RECHARGE else SystemAccount.BONUSES
    await shop.shop.ledger.credit(user_id=user_id, amount=D(amount), key=key, type=type, reference=key, source=source)


async def invoice_row(pool: asyncpg.Pool, message: Screen) -> asyncpg.Record:
    """The invoice behind a "Check payment" button."""
    data = next(b.callback_data for b in message.buttons if (b.callback_data or "").startswith("acc_tc:"))
    return await queries.invoices.invoice_by_id(pool, int(data.rsplit(":", 1)[1]))


async def test_balance_shows_spendable_and_reserved_money_in_both_languages(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        ann = Customer(shop, 101)
        zoya = Customer(shop, 102, language="ru", first_name="Зоя")
        empty = await ann.send("/balance")
        assert "Your balance: 0.00 USD" in empty.text and "Top up with crypto" in empty.text
        await give(shop, ann.id, "25", "seed:101")
        await shop.shop.fulfilment.orders.place(
            user_id=ann.id,
            product="stars",
            quantity=250,
            recipient="durov",
            recipient_name="Pavel",
            price=D("5"),
            currency="USD",
        )
        menu = await ann.send("/start")
        await ann.press(menu, "Balance")
        shown = ann.message(menu.message_id)  # the menu itself became the balance screen
        assert "Your balance: 20.00 USD" in shown.text and "Reserved for orders in progress: 5.00 USD" in shown.text
        assert {b.text for b in shown.buttons} >= {"➕ Top up", "📜 History"}
        await ann.press(shown, "Top up")  # a shop without Heleket still offers amounts, then says why not
        await ann.press(ann.message(menu.message_id), "10 USD")
        assert "Top-ups are not available in this shop yet" in ann.message(menu.message_id).text
        refused = await ann.send("/recharge 15")
        assert "Top-ups are not available in this shop yet" in refused.text

        await zoya.send("/start")
        await give(shop, zoya.id, "7.5", "seed:102")
        russian = await zoya.send("/balance")
        assert "Ваш баланс: 7.50 USD" in russian.text and "Зарезервировано" not in russian.text
        assert {b.text for b in russian.buttons} >= {"➕ Пополнить", "📜 История"}
        assert_every_callback_answered(shop, ann, zoya)


async def test_top_up_from_a_preset_to_the_credit_notice(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        ann = Customer(shop, 201)
        choice = await ann.send("/recharge")
        limits = await shop.shop.topups.limits()
        assert f"Minimum: {limits.minimum:.2f} USD" in choice.text
        assert [b.text for b in choice.buttons][:4] == ["5 USD", "10 USD", "25 USD", "50 USD"]
        await ann.press(choice, "10 USD")
        invoice = ann.message(choice.message_id)  # the choice became the invoice
        assert "Top-up #" in invoice.text and "10.00 USD" in invoice.text
        assert "The link is valid for 60 minutes, until" in invoice.text
        row = await invoice_row(shop.shop.pool, invoice)
        pay = find_button(invoice, "Pay")
        assert pay.url == shop.heleket.invoice_by_order(row["order_id"]).url and pay.callback_data is None
        shop.heleket.pay(row["order_id"])
        notice = await ann.next_message()
        assert "Your top-up of 10.00 USD has arrived. Balance: 10.00 USD" in notice.text
        balance = await ann.send("/balance")
        assert "Your balance: 10.00 USD" in balance.text
        sent = [c for c in shop.telegram.calls if c.method == "sendMessage" and "has arrived" in c.params["text"]]
        assert len(sent) == 1  # the shop's own notice, not repeated by the flow
        assert_every_callback_answered(shop, ann)


async def test_check_payment_credits_a_silenced_payment_and_a_forged_check_changes_nothing(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        pool = shop.shop.pool
        zoya = Customer(shop, 301, language="ru", first_name="Зоя")
        eve = Customer(shop, 302, first_name="Eve")
        invoice = await zoya.send("/recharge 15")  # an amount given: no choice, straight to the invoice
        assert "Пополнение №" in invoice.text and "15.00 USD" in invoice.text
        assert "Ссылка действует 60 минут" in invoice.text
        row = await invoice_row(pool, invoice)
        check = find_button(invoice, "Проверить оплату").callback_data
        assert check is not None

        waiting = await zoya.press(invoice, "Проверить оплату")
        assert waiting.params["text"].startswith("⏳ Оплаты пока нет") and waiting.params["show_alert"]
        shop.heleket.silence_webhooks()
        shop.heleket.pay(row["order_id"])

        await eve.send("/start")
        for forged in (check, "acc_tc:999999", "acc_tc:0"):
            answer = await eve.press_data(await eve.forged_button(forged), forged)
            assert answer.params["text"] == "This invoice was not found. Open /recharge to top up."
        assert (await shop.shop.ledger.balance(zoya.id)).available == 0
        assert (await queries.invoices.invoice_by_id(pool, row["id"]))["status"] == "check"

        # Heleket's waiting answer is remembered for 30 s; after them the press asks again.
        assert shop.shop.topups.lookup is not None
        shop.shop.topups.lookup.clock = lambda: time.time() + 31
        paid = await zoya.press(invoice, "Проверить оплату")
        assert paid.params["text"] == "✅ Оплачено: деньги на вашем балансе."
        done = zoya.message(invoice.message_id)
        assert done.text.startswith(f"🧾 Пополнение №{row['id']}\n✅ Оплачено")
        assert "Оплатить" not in {b.text for b in done.buttons}  # a paid invoice offers no Pay any more
        notice = await zoya.next_message()
        assert "Пополнение на 15.00 USD зачислено" in notice.text
        assert (await shop.shop.ledger.balance(zoya.id)).available == D("15")
        assert check not in {b.callback_data for b in done.buttons}
        assert_every_callback_answered(shop, zoya, eve)


async def test_a_custom_amount_is_checked_and_the_prompt_can_be_left(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        ann = Customer(shop, 401)
        limits = await shop.shop.topups.limits()
        choice = await ann.send("/recharge")
        await ann.press(choice, "Other amount")
        assert "Send the amount as a number" in ann.message(choice.message_id).text
        too_small = await ann.send("0.5")
        assert f"The smallest top-up is {limits.minimum:.2f} USD" in too_small.text
        not_a_number = await ann.send("ten <b>dollars</b>")
        assert "That is not an amount" in not_a_number.text
        too_precise = await ann.send("12.345")
        assert "at most two digits after the point" in too_precise.text
        invoice = await ann.send("20,5")
        assert "Top-up #" in invoice.text and "20.50 USD" in invoice.text
        after = await ann.send("20")  # the prompt is over: a number is just text now
        assert "I did not understand that" in after.text

        too_large = await ann.send("/recharge 5000")  # a refused amount waits for a better one
        assert f"The largest top-up is {limits.maximum:.2f} USD" in too_large.text
        assert "Top-up #" in (await ann.send("15")).text

        # Three ways out of the prompt: /cancel, its Menu button, and any other command.
        await ann.press(await ann.send("/recharge"), "Other amount")
        assert "OK, cancelled" in (await ann.send("/cancel")).text
        assert "I did not understand that" in (await ann.send("30")).text
        choice = await ann.send("/recharge")
        await ann.press(choice, "Other amount")
        await ann.press(ann.message(choice.message_id), "Menu")
        assert ann.message(choice.message_id).text == "What would you like to do?"
        assert "I did not understand that" in (await ann.send("30")).text
        await ann.press(await ann.send("/recharge"), "Other amount")
        assert "How this shop works" in (await ann.send("/help")).text
        assert "I did not understand that" in (await ann.send("30")).text

        amounts = await shop.shop.pool.fetch("SELECT amount FROM invoices WHERE user_id = $1 ORDER BY id", ann.id)
        assert [r["amount"] for r in amounts] == [D("20.5"), D("15")]
        assert_every_callback_answered(shop, ann)


async def test_history_pages_through_top_ups_and_orders_in_one_message(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        ann = Customer(shop, 501)
        zoya = Customer(shop, 502, language="ru")
        await ann.send("/start")
        for n in range(11):
            await give(shop, ann.id, f"{n + 1}", f"invoice:{n}", MovementType.RECHARGE)
        await give(shop, ann.id, "0.50", "welcome-bonus")
        orders = shop.shop.fulfilment.orders
        placed = [
            await orders.place(
                user_id=ann.id,
                product=product,
                quantity=quantity,
                recipient="friend",
                recipient_name="Friend",
                price=D(price),
                currency="USD",
            )
            for product, quantity, price in (("stars", 100, "2"), ("premium", 3, "14.99"), ("stars", 50, "1"))
        ]
        await orders.complete(placed[0], txid="tx", cost_ton=None, cost=D("1.5"))
        await orders.refund(placed[2], "refund-reason-failed")

        first = await ann.send("/history")
        lines = first.text.splitlines()
        assert lines[0] == "📜 Your payments and orders · 1/2"
        entries = [line for line in lines if line[:2] == "20"]
        assert len(entries) == 10
        assert entries[0].endswith(f"↩️ Order #{placed[2].id}: 50 Telegram Stars for @friend — 1.00 USD, refunded")
        assert entries[1].endswith(
            f"⏳ Order #{placed[1].id}: Telegram Premium for 3 months for @friend — 14.99 USD, in progress"
        )
        assert entries[2].endswith(f"✅ Order #{placed[0].id}: 100 Telegram Stars for @friend — 2.00 USD, delivered")
        assert entries[3].endswith("🎁 Bonus +0.50 USD") and entries[4].endswith("➕ Top-up +11.00 USD")
        assert [b.text for b in first.buttons] == ["Older »", "« Menu"]

        await ann.press(first, "Older")
        older = ann.message(first.message_id)
        assert older.text.splitlines()[0] == "📜 Your payments and orders · 2/2"
        assert [line[18:] for line in older.text.splitlines() if line[:2] == "20"] == [
            f"➕ Top-up +{n}.00 USD" for n in (5, 4, 3, 2, 1)
        ]
        assert [b.text for b in older.buttons] == ["« Newer", "« Menu"]
        await ann.press(older, "Newer")
        assert ann.message(first.message_id).text == first.text
        stale = await ann.forged_button("acc_hp:99")  # an old or forged page number: the last page, no error
        await ann.press_data(stale, "acc_hp:99")
        assert ann.message(stale.message_id).text.splitlines()[0].endswith("2/2")
        edits = [c for c in shop.telegram.calls if c.method == "editMessageText" and c.params["chat_id"] == ann.id]
        assert [c.params["message_id"] for c in edits] == [first.message_id, first.message_id, stale.message_id]

        menu = await zoya.send("/start")
        await zoya.press(menu, "История")
        assert "Здесь пока пусто" in zoya.message(menu.message_id).text
        assert_every_callback_answered(shop, ann, zoya)


async def test_the_language_switch_is_stored_and_answers_in_the_new_language(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        ann = Customer(shop, 601)  # Telegram says English
        menu = await ann.send("/start")
        await ann.press(menu, "Language")
        choice = ann.message(menu.message_id)
        assert choice.text == "🌐 Choose your language:"
        assert [b.text for b in choice.buttons] == ["✓ 🇬🇧 English", "🇷🇺 Русский", "« Menu"]
        answer = await ann.press(choice, "Русский")
        assert answer.params["text"] == "✅ Готово: теперь я говорю по-русски."
        switched = ann.message(menu.message_id)
        assert switched.text.startswith("✅ Готово")
        assert "💰 Баланс" in {b.text for b in switched.buttons}
        stored = await shop.shop.pool.fetchrow("SELECT language, language_set FROM users WHERE id = $1", ann.id)
        assert (stored["language"], stored["language_set"]) == ("ru", True)
        welcome = await ann.send("/start")  # Telegram still says "en"; the choice wins
        assert welcome.text.startswith("Добро пожаловать")
        no_contact = await ann.send("/paysupport")
        assert "Поддержка по платежам" in no_contact.text
        assert "Магазин пока не указал контакт поддержки" in no_contact.text

        typed = await ann.send("/language")
        assert typed.text == "🌐 Выберите язык:"
        await ann.press(typed, "English")
        assert ann.message(typed.message_id).text.startswith("✅ Done: I will speak English")
        await ann.press_data(await ann.forged_button("acc_lang:de"), "acc_lang:de")
        assert (await ann.send("/balance")).text.startswith("💰 Your balance")
        assert_every_callback_answered(shop, ann)


async def test_help_and_paysupport_name_the_support_contact(database_url: str) -> None:
    async with running_shop(database_url, shop=ShopConfig(support_contact="@shop_helpdesk <24/7>")) as shop:
        ann = Customer(shop, 701)
        zoya = Customer(shop, 702, language="ru")
        help_text = await ann.send("/help")
        assert "How this shop works" in help_text.text and "/recharge — top up with crypto" in help_text.text
        assert help_text.text.endswith("🛟 Support: @shop_helpdesk <24/7>")
        support = await ann.send("/paysupport")
        assert "Payment support" in support.text and "Check payment" in support.text
        assert support.text.endswith("🛟 Support: @shop_helpdesk <24/7>")
        assert "&lt;24/7&gt;" in ann.sent[-1].params["text"]  # the contact is escaped, not markup

        menu = await zoya.send("/start")
        await zoya.press(menu, "Помощь")
        shown = zoya.message(menu.message_id)
        assert "Как работает магазин" in shown.text and shown.text.endswith("🛟 Поддержка: @shop_helpdesk <24/7>")
        assert_every_callback_answered(shop, ann, zoya)
