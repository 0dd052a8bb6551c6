"""The admin area as an operator uses it, through the real bot, the Telegram, Heleket and Fragment emulators
and a real database: who gets in, the dashboard after a scripted day, the chart, balance adjustments,
refunds of stuck orders, maintenance mode and runtime prices."""

from __future__ import annotations

import io
from decimal import Decimal

import anyio
import pytest
from matplotlib import image

from shopbot.bot.admin.callbacks import Adjust, AdminMenu, Dashboard, MaintenanceAction, OrderAction, PriceAction
from shopbot.bot.callbacks import Menu
from shopbot.db.queries import queries
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.heleket_invoices import rate
from shopbot.sandbox.telegram_wire import Message
from tests.bot.test_bot_purchase import Chat, button_data, plain
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
ADMIN = 9001


def admin_shop(database_url: str, **keys: object):  # type: ignore[no-untyped-def]
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    return running_shop(database_url, heleket=True, fragment=fragment, telegram_keys={"admin_ids": (ADMIN,)}, **keys)


async def open_admin(shop: ShopUnderTest) -> Chat:
    shop.telegram.add_user(ADMIN, first_name="Ops", username="shop_ops", language_code="en")
    chat = Chat(shop, ADMIN, "en")
    chat.say("/admin")
    await chat.screen("admin-title")
    return chat


async def reply(chat: Chat, text: str, key: str, **args: object) -> Message:
    """Type text and wait for the bot's new message that shows this text (earlier ones do not count)."""
    last = max((m.message_id for m in chat.shop.telegram.chat_messages(chat.user_id, include_user=True)), default=0)
    chat.say(text)
    needle = plain(chat.t(key, **args))
    with anyio.fail_after(10):
        while True:
            for message in chat.shop.telegram.chat_messages(chat.user_id):
                if message.message_id > last and message.text and needle in message.text:
                    return message
            await anyio.sleep(0.02)


async def press_menu(chat: Chat, action: str) -> Message:
    menu = await chat.screen("admin-title")
    chat.press(menu, AdminMenu(action=action).pack())
    return menu


async def audit(shop: ShopUnderTest, action: str) -> list[dict[str, object]]:
    rows = await shop.shop.pool.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [dict(row) for row in rows]


async def top_up(shop: ShopUnderTest, user_id: int, amount: str) -> None:
    assert shop.heleket is not None
    before = (await shop.shop.ledger.balance(user_id)).available
    invoice = await shop.shop.topups.create(user_id, D(amount))
    shop.heleket.pay(invoice.order_id)
    with anyio.fail_after(10):
        while (await shop.shop.ledger.balance(user_id)).available != before + D(amount):
            await anyio.sleep(0.05)


async def buy(shop: ShopUnderTest, user_id: int, product: str, quantity: int) -> int:
    quote = await shop.shop.fulfilment.shopfront.quote(product, quantity, "best_friend")
    order = await shop.shop.fulfilment.shopfront.place(user_id, quote)
    return order.id


async def test_a_non_admin_gets_nothing_of_the_admin_area(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with admin_shop(database_url) as shop:
        stranger = Chat(shop, 701, "en")
        shop.telegram.add_user(701, first_name="Eve", language_code="en")
        stranger.say("/admin")
        await stranger.screen("unknown-text")  # what any unknown command gets
        hint = await stranger.screen("unknown-text")
        query = stranger.forge(hint, AdminMenu(action="dash").pack())
        assert await stranger.answer_to(query) == stranger.t("stale-button")
        query = stranger.forge(hint, Adjust(step="do", token="made-up").pack())
        assert await stranger.answer_to(query) == stranger.t("stale-button")
        assert not any(
            stranger.t("admin-title").split("\n")[0] in str(m.text) for m in shop.telegram.chat_messages(701)
        )
        assert any("admin area refused to user 701" in r.getMessage() for r in caplog.records)
        await stranger.assert_every_press_answered()

        admin = await open_admin(shop)  # an admin gets the menu, with the broadcast engineer's button
        assert button_data(await admin.screen("admin-title"), "adm_bc") == "adm_bc:new"


async def test_the_dashboard_adds_up_a_scripted_day_and_draws_a_png_chart(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        fund_wallet(shop)
        assert shop.fragment is not None
        for user in (711, 712):
            shop.telegram.add_user(user, first_name=f"Buyer{user}")
            await shop.shop.pool.execute("INSERT INTO users (id, first_name) VALUES ($1, 'B')", user)
        await top_up(shop, 711, "5")
        await top_up(shop, 712, "20")
        shop.fragment.fail_next("create_order", "USER_NOT_FOUND")  # refused outright: refunded
        refused = await wait_final(shop, await buy(shop, 711, "stars", 100))
        assert refused.state == "refunded"
        stars = await wait_final(shop, await buy(shop, 711, "stars", 50))
        premium = await wait_final(shop, await buy(shop, 712, "premium", 3))
        assert (stars.state, premium.state) == ("completed", "completed")

        ton_usd = rate("TON", "USD")
        cost = sum(((o.cost_ton or D(0)) * ton_usd).quantize(D("0.01")) for o in (stars, premium))
        sales = D("1.00") + D("14.99")
        admin = await open_admin(shop)
        menu = await press_menu(admin, "dash")
        t = admin.t
        expected = [
            t("admin-dash-topups", count=2, amount="25.00 USD"),
            t("admin-dash-orders", orders=f"{t('admin-state-completed')} 2, {t('admin-state-refunded')} 1"),
            t("admin-dash-sold", stars=50, count=1, months=3),
            t("admin-dash-revenue", sales=f"{sales} USD", cost=f"{cost:.2f} USD", revenue=f"{sales - cost:.2f} USD"),
            t("admin-dash-users", new=3, active=3),
            t("admin-cookies-not-needed"),
        ]
        dashboard = await admin.showing(plain(expected[0]))
        for line in expected:
            assert plain(line) in str(dashboard.text), f"{plain(line)!r} not in {dashboard.text!r}"
        assert "fragment: closed" in str(dashboard.text)
        assert dashboard.message_id == menu.message_id
        assert cost > 0  # the Fragment cost is really taken off the revenue

        admin.press(dashboard, Dashboard(period="30d").pack())
        await admin.showing(plain(t("admin-dash-title", period=t("admin-period-30d"), since="")).split("(")[0])

        dashboard = await admin.showing(plain(expected[0]))
        admin.press(dashboard, Dashboard(period="chart").pack())
        sent = await shop.telegram.wait_for_call(
            "sendPhoto", timeout=20, predicate=lambda c: c.params["chat_id"] == ADMIN
        )
        assert sent.ok, sent.description
        [message] = [m for m in shop.telegram.chat_messages(ADMIN) if m.photo]
        png = shop.telegram.photo(message)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
        pixels = image.imread(io.BytesIO(png), format="png")  # decodes every chunk: a broken PNG raises
        assert pixels.shape[:2] == (400, 800) == (message.photo[-1].height, message.photo[-1].width)
        assert pixels.std() > 0  # something is drawn
        assert "15.99 USD" in str(message.caption)  # the 30 days' sales
        forged = admin.forge(dashboard, Dashboard(period="1y").pack())
        assert await admin.answer_to(forged) == t("stale-button")
        await admin.assert_every_press_answered()


async def test_an_admin_adjusts_a_balance_once_with_a_reason_and_two_confirmations(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        await funded_buyer(shop, 721, "10")
        shop.telegram.add_user(721, first_name="Carol", username="carol_buys")
        shop.telegram.send_text(721, "/start")  # the shop learns her username
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 721)
        admin = await open_admin(shop)
        await press_menu(admin, "users")
        await admin.screen("admin-user-ask")
        await reply(admin, "@nobody_like_that", "admin-user-not-found", typed="@nobody_like_that")
        profile = await reply(admin, "@Carol_Buys", "admin-user-balance", balance="10.00 USD", amount="0.00 USD")
        assert "Carol" in str(profile.text) and "@carol_buys" in str(profile.text)
        admin.press(profile, button_data(profile, "adm_u:adjust"))
        await admin.screen("admin-adjust-ask-amount", id=721, balance="10.00 USD")
        for bad in ("five", "+0", "1.234"):
            await reply(admin, bad, "admin-adjust-bad-amount")
        await reply(admin, "+5", "admin-adjust-ask-reason")
        await reply(admin, "x", "admin-adjust-bad-reason", min=3, max=200)
        preview = await reply(admin, "goodwill for a slow delivery", "admin-adjust-check")
        assert "10.00 USD → 15.00 USD" in str(preview.text)
        assert (await shop.shop.ledger.balance(721)).available == D("10")  # nothing moved yet
        admin.press(preview, button_data(preview, "adm_adj:check:"))
        really = await admin.screen("admin-adjust-really")
        yes = button_data(really, "adm_adj:do:")
        assert (await shop.shop.ledger.balance(721)).available == D("10")  # still nothing: one more press
        admin.press(really, yes)
        await admin.screen("admin-adjust-done", id=721, amount="+5.00 USD", balance="15.00 USD")
        again = admin.forge(really, yes)  # a double press
        assert await admin.answer_to(again) == admin.t("admin-adjust-already")
        assert (await shop.shop.ledger.balance(721)).available == D("15")
        [entry] = await audit(shop, "balance.adjust")
        assert (entry["admin_id"], entry["target"], entry["reason"]) == (
            ADMIN,
            "user:721",
            "goodwill for a slow delivery",
        )
        assert '"10' in str(entry["before"]) and '"15' in str(entry["after"])

        # Taking more than there is: refused by the ledger, with a clear answer, and nothing changes.
        done = await admin.screen("admin-adjust-done", id=721, amount="+5.00 USD", balance="15.00 USD")
        admin.press(done, button_data(done, "adm_u:show"))
        profile = await admin.screen("admin-user-balance", balance="15.00 USD", amount="0.00 USD")
        admin.press(profile, button_data(profile, "adm_u:adjust"))
        await admin.screen("admin-adjust-ask-amount", id=721, balance="15.00 USD")
        await reply(admin, "-100", "admin-adjust-ask-reason")
        preview = await reply(admin, "testing the floor", "admin-adjust-check")
        admin.press(preview, button_data(preview, "adm_adj:check:"))
        really = await admin.screen("admin-adjust-really")
        query = admin.press(really, button_data(really, "adm_adj:do:"))
        assert await admin.answer_to(query) == admin.t("admin-adjust-below-zero")
        await admin.screen("admin-adjust-refused", amount="-100.00 USD", balance="15.00 USD")
        query = admin.forge(really, button_data(really, "adm_adj:do:"))  # pressed again: nothing pending
        assert await admin.answer_to(query) == admin.t("stale-button")
        assert (await shop.shop.ledger.balance(721)).available == D("15")
        assert len(await audit(shop, "balance.adjust")) == 1
        movements = await shop.shop.pool.fetch("SELECT reference FROM movements WHERE type = 'adjustment'")
        assert [m["reference"] for m in movements] == [f"admin:{ADMIN}"]
        assert (await verify_ledger(shop.shop.pool)).ok
        await admin.assert_every_press_answered()


async def press_until_not_busy(admin: Chat, message: Message, data: str) -> str | None:
    """Press; once more if a payment was being made at that moment (the admin is told to retry)."""
    for _ in range(20):
        answer = await admin.answer_to(admin.forge(message, data))
        if answer != admin.t("admin-refund-busy", id=int(data.rsplit(":", 1)[1])):
            return answer
        await anyio.sleep(0.2)
    raise AssertionError("the wallet stayed busy")


async def test_an_admin_refunds_a_stuck_order_but_never_one_whose_payment_may_land(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        fund_wallet(shop)
        assert shop.fragment is not None
        await funded_buyer(shop, 731, "50")
        shop.fragment.ambiguous_next(settle="success")  # the payment leaves; the answer is lost
        uncertain = await buy(shop, 731, "stars", 50)
        with anyio.fail_after(10):
            while (await shop.shop.fulfilment.orders.get(uncertain)).state != "verifying":  # type: ignore[union-attr]
                await anyio.sleep(0.05)
        shop.fragment.fail_next("create_order", status=503, times=10_000)  # the service is down from now on
        stuck = await buy(shop, 731, "stars", 100)
        await shop.shop.pool.execute(
            "UPDATE orders SET created_at = now() - interval '20 minutes' WHERE id = $1", stuck
        )
        assert (await shop.shop.ledger.balance(731)).available == D("47.00")

        admin = await open_admin(shop)
        await press_menu(admin, "attention")
        listing = await admin.screen("admin-attention-title", count=2)
        assert f"#{uncertain}" in str(listing.text) and f"#{stuck}" in str(listing.text)

        # The uncertain order: Fragment says its payment is still processing, so it is not refunded.
        admin.press(listing, OrderAction(action="refund", order_id=uncertain).pack())
        confirm = await admin.screen(
            "admin-refund-confirm", id=uncertain, user=731, amount="1.00 USD", state=admin.t("admin-state-verifying")
        )
        answer = await press_until_not_busy(admin, confirm, OrderAction(action="refund_ok", order_id=uncertain).pack())
        assert answer == admin.t("admin-refund-unsafe", id=uncertain, status="processing")
        assert (await shop.shop.fulfilment.orders.get(uncertain)).state == "verifying"  # type: ignore[union-attr]

        # The stuck one never had a payment signed: refunded through the ledger, and the buyer is told.
        listing = await admin.screen("admin-attention-title", count=2)
        query = admin.press(listing, OrderAction(action="retry", order_id=stuck).pack())
        assert await admin.answer_to(query) == admin.t("admin-order-retrying", id=stuck)
        answer = await press_until_not_busy(admin, listing, OrderAction(action="refund_ok", order_id=stuck).pack())
        assert answer == admin.t("admin-refund-done", id=stuck, amount="2.00 USD")
        assert (await shop.shop.fulfilment.orders.get(stuck)).state == "refunded"  # type: ignore[union-attr]
        assert (await shop.shop.ledger.balance(731)).available == D("49.00")
        await shop.telegram.wait_for_call(
            "sendMessage",
            predicate=lambda c: c.params["chat_id"] == 731 and admin.t("refund-reason-admin") in c.params["text"],
        )
        again = await press_until_not_busy(admin, listing, OrderAction(action="refund_ok", order_id=stuck).pack())
        assert again == admin.t("admin-order-final", id=stuck, state=admin.t("admin-state-refunded"))
        assert (await shop.shop.ledger.balance(731)).available == D("49.00")  # refunded once
        [refund] = await audit(shop, "order.refund")
        assert (refund["admin_id"], refund["target"]) == (ADMIN, f"order:{stuck}")
        assert len(await audit(shop, "order.retry")) == 1
        assert (await verify_ledger(shop.shop.pool)).ok
        await admin.assert_every_press_answered()


async def test_maintenance_turns_users_away_but_lets_admins_and_payments_through(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        user = Chat(shop, 741, "ru")
        shop.telegram.add_user(741, first_name="Ivan", language_code="ru")
        user.say("/start")
        menu = await user.screen("welcome", name="Ivan")
        admin = await open_admin(shop)
        await press_menu(admin, "maint")
        screen = await admin.screen("admin-maintenance-off", message=admin.t("maintenance-default"))
        admin.press(screen, MaintenanceAction(action="on").pack())
        screen = await admin.screen("admin-maintenance-on", message=admin.t("maintenance-default"))

        user.say("/balance")
        await user.screen("maintenance-default")  # in the user's own language
        query = user.press(menu, Menu(action="balance").pack())
        assert await user.answer_to(query) == user.t("maintenance-default")
        await top_up(shop, 741, "5")  # money on its way still arrives, and the user is told
        await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == 741 and "5.00 USD" in c.params["text"]
        )

        admin.press(screen, MaintenanceAction(action="text").pack())
        await admin.screen("admin-maintenance-ask-text", max=1000)
        admin.say("Back at 18:00 <UTC>")
        await admin.showing("Back at 18:00 <UTC>")
        user.say("/start")
        await user.showing("Back at 18:00 <UTC>")  # shown as typed, not as markup
        query = user.forge(menu, Menu(action="stars").pack())
        assert await user.answer_to(query) == "Back at 18:00 <UTC>"
        await reply(admin, "/admin", "admin-title")  # the admin still uses the bot

        await press_menu(admin, "maint")
        screen = await admin.screen("admin-maintenance-on", message="Back at 18:00 <UTC>")
        admin.press(screen, MaintenanceAction(action="off").pack())
        await admin.screen("admin-maintenance-off", message="Back at 18:00 <UTC>")
        before = len(shop.telegram.chat_messages(741))
        user.say("/balance")
        with anyio.fail_after(10):
            while len(shop.telegram.chat_messages(741)) == before:
                await anyio.sleep(0.02)
        assert "5.00 USD" in str(shop.telegram.chat_messages(741)[-1].text)
        assert next(e["after"] for e in await audit(shop, "maintenance.on")) is not None
        assert len(await audit(shop, "maintenance.off")) == 1
        [message] = await audit(shop, "maintenance.message")
        assert "Back at 18:00 <UTC>" in str(message["after"]) and message["admin_id"] == ADMIN

        # Switched on by another instance (the same database): this one follows within seconds.
        await queries.admin.put_setting(shop.shop.pool, "maintenance", '{"on": true, "message": "Elsewhere"}', ADMIN)
        with anyio.fail_after(10):
            while not any(m.text == "Elsewhere" for m in shop.telegram.chat_messages(741)):
                user.say("/balance")
                await anyio.sleep(0.5)
        await user.assert_every_press_answered()
        await admin.assert_every_press_answered()


async def test_prices_change_at_runtime_audited_and_bad_prices_are_refused(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        fund_wallet(shop)
        shopfront = shop.shop.fulfilment.shopfront
        assert shopfront.price("stars", 100) == D("2.00")
        admin = await open_admin(shop)
        await press_menu(admin, "prices")
        screen = await admin.screen("admin-prices-title")
        admin.press(screen, PriceAction(item="star").pack())
        await admin.screen("admin-price-ask", item=admin.t("admin-price-star"), price="0.02 USD", places=6)
        for bad, key in (
            ("cheap", "admin-price-not-a-number"),
            ("-1", "admin-price-not-a-number"),
            ("0", "admin-price-out-of-range"),
            ("0.0000001", "admin-price-too-precise"),
            ("0.00001", "admin-price-star-too-low"),
        ):
            await reply(admin, bad, key, places=6, count=50)
        assert shopfront.price("stars", 100) == D("2.00")
        await reply(admin, "0,03", "admin-saved")
        assert shopfront.price("stars", 100) == D("3.00")
        quote = await shopfront.quote("stars", 100, "best_friend")
        assert quote.price == D("3.00")

        screen = await admin.screen("admin-saved")
        admin.press(screen, PriceAction(item="6").pack())
        await admin.screen(
            "admin-price-ask", item=admin.t("admin-price-premium", months=6), price="19.99 USD", places=2
        )
        screen = await reply(
            admin, "21.50", "admin-prices-premium", months=6, price="21.50 USD", configured="19.99 USD"
        )
        assert shopfront.price("premium", 6) == D("21.50")
        stored = await shop.shop.pool.fetchval("SELECT value FROM shop_settings WHERE name = 'prices'")
        assert '"0.03"' in stored and '"21.50"' in stored
        changes = await audit(shop, "prices.set")
        assert len(changes) == 2 and all(c["admin_id"] == ADMIN for c in changes)
        assert '"0.02"' in str(changes[0]["before"]) and '"0.03"' in str(changes[0]["after"])

        admin.press(screen, PriceAction(item="reset").pack())
        await admin.screen("admin-prices-premium", months=6, price="19.99 USD", configured="19.99 USD")
        assert (shopfront.price("stars", 100), shopfront.price("premium", 6)) == (D("2.00"), D("19.99"))
        assert len(await audit(shop, "prices.set")) == 3
        await admin.assert_every_press_answered()
