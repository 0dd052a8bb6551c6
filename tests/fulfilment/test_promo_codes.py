"""Promo codes (issue 18) as users and the operator meet them: a credit redeemed exactly once however many
race for it, a clear answer for every refusal, a discount shown in the confirmation, spent by the order it
was placed with, given back when that order is refunded, and judged by the cost guard at what the user pays;
codes created and switched off in the admin menu, audited. Through the real bot, the Telegram, Heleket and
Fragment emulators and a real database; the books balance after each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import asyncpg
import pytest

from shopbot.bot.admin.callbacks import AdminMenu, PromoAction
from shopbot.bot.callbacks import Menu
from shopbot.config.schema import ShopConfig
from shopbot.db.queries import queries
from shopbot.errors import Refused
from shopbot.fulfilment.orders import Orders
from shopbot.fulfilment.products import Quote, Shopfront
from shopbot.fulfilment.promo import PromoRefused, apply_discount, best_discount, redeem
from shopbot.ledger import Balance, Ledger, MovementType, SystemAccount
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from tests.bot.test_admin import ADMIN, audit, open_admin, reply
from tests.bot.test_bot_purchase import Chat, balance, button_data, buyer, placed, plain, stars
from tests.fulfilment.helpers import fund_wallet, movements_of, wait_final
from tests.ledger.helpers import make_user
from tests.shop_harness import running_shop

D = Decimal


async def new_code(
    db: asyncpg.Pool,
    code: str,
    kind: str = "credit",
    *,
    amount: str | None = "1.00",
    percent: str | None = None,
    cap: str | None = None,
    uses: int = 50,
    per_user: int = 1,
    expires_at: datetime | None = None,
) -> int:
    if kind == "discount":
        amount = None
    row = await queries.promo.create_code(
        db,
        code,
        kind,
        D(amount) if amount else None,
        D(percent) if percent else None,
        D(cap) if cap else None,
        uses,
        per_user,
        expires_at,
        None,
    )
    return int(row["id"])


async def bonuses(db: asyncpg.Pool, code: str) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM movements WHERE type = 'bonus' AND reference = $1", f"promo:{code}")


def fragment_emulator() -> FragmentEmulator:
    emulator = FragmentEmulator(ton_per_star=D("0.0044"))
    emulator.add_user("best_friend", "Best Friend")
    return emulator


async def test_200_users_racing_for_a_50_use_code_get_exactly_50_bonuses(database_url: str) -> None:
    async with asyncpg.create_pool(database_url, min_size=20, max_size=20) as pool:
        ledger = Ledger(pool, "USD")
        await new_code(pool, "LAUNCH50", amount="1.00", uses=50)
        users = [await make_user(pool, 10_000 + n) for n in range(200)]
        outcomes: dict[int, str] = {}

        async def one(user_id: int) -> None:
            try:
                await redeem(pool, ledger, user_id, "launch50")  # any case
                outcomes[user_id] = "credited"
            except PromoRefused as refused:
                outcomes[user_id] = refused.reason

        async with anyio.create_task_group() as group:
            for user_id in users:
                group.start_soon(one, user_id)

        winners = [u for u, outcome in outcomes.items() if outcome == "credited"]
        assert len(winners) == 50 and sorted(set(outcomes.values())) == ["credited", "used_up"]
        assert len(await bonuses(pool, "LAUNCH50")) == 50
        assert await pool.fetchval("SELECT uses FROM promo_codes WHERE code = 'LAUNCH50'") == 50
        assert await pool.fetchval("SELECT count(*) FROM promo_redemptions") == 50
        for user_id in users:
            expected = D("1.00") if user_id in winners else D("0")
            assert (await ledger.balance(user_id)).available == expected
        assert (await verify_ledger(pool)).ok


async def test_a_user_pressing_twice_redeems_once(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        pool, ledger = shop.shop.pool, shop.shop.ledger
        await new_code(pool, "TWICE", amount="2.50", uses=100)
        await make_user(pool, 700)
        results: list[str] = []

        async def press() -> None:
            try:
                results.append((await redeem(pool, ledger, 700, "TWICE")).kind)
            except PromoRefused as refused:
                results.append(refused.reason)

        async with anyio.create_task_group() as group:
            for _ in range(10):  # ten presses at once
                group.start_soon(press)
        assert sorted(results) == ["already_used"] * 9 + ["credit"]
        assert (await ledger.balance(700)).available == D("2.50")

        # In the chat: the first /promo credits, the second says it was used already.
        shop.telegram.add_user(701, first_name="Pat", language_code="en")
        chat = Chat(shop, 701, "en")
        chat.say("/promo twice")
        await chat.screen("promo-credited", code="TWICE", amount="2.50 USD")
        chat.say("/promo TWICE")
        await chat.screen("promo-refused-already-used", code="TWICE")
        assert (await ledger.balance(701)).available == D("2.50")
        assert len(await bonuses(pool, "TWICE")) == 2  # one for each user
        assert await pool.fetchval("SELECT uses FROM promo_codes WHERE code = 'TWICE'") == 2
        assert (await verify_ledger(pool)).ok


@pytest.mark.parametrize("language", ["en", "ru"])
async def test_every_refusal_has_its_own_answer_and_changes_nothing(database_url: str, language: str) -> None:
    async with running_shop(database_url) as shop:
        pool = shop.shop.pool
        await new_code(pool, "OLD", expires_at=datetime.now(UTC) - timedelta(days=1))
        gone = await new_code(pool, "GONE", uses=1)
        await make_user(pool, 799)
        await redeem(pool, shop.shop.ledger, 799, "GONE")
        off = await new_code(pool, "PAUSED")
        await queries.promo.set_code_enabled(pool, off, False)
        await new_code(pool, "MINE")
        shop.telegram.add_user(702, first_name="Sam", language_code=language)
        chat = Chat(shop, 702, language)
        chat.say("/promo mine")
        await chat.screen("promo-credited", code="MINE", amount="1.00 USD")
        before = await pool.fetchval("SELECT count(*) FROM movements")
        for typed, key, code in (
            ("/promo nosuch", "promo-refused-unknown", "NOSUCH"),
            ("/promo old", "promo-refused-expired", "OLD"),
            ("/promo gone", "promo-refused-used-up", "GONE"),
            ("/promo paused", "promo-refused-switched-off", "PAUSED"),
            ("/promo mine", "promo-refused-already-used", "MINE"),
            ("/promo $$", "promo-refused-bad-code", "$$"),
        ):
            chat.say(typed)
            await chat.screen(key, code=code)
        # The menu button asks for the code, and the typed answer is redeemed the same way.
        chat.say("/start")
        menu = await chat.showing(plain(chat.t("welcome", name="Sam")))
        chat.press(menu, Menu(action="promo").pack())
        await chat.screen("promo-ask")
        chat.say("nosuch2")
        await chat.screen("promo-refused-unknown", code="NOSUCH2")
        assert await pool.fetchval("SELECT count(*) FROM movements") == before
        assert [r["uses"] for r in await pool.fetch("SELECT uses FROM promo_codes ORDER BY id")] == [0, 1, 0, 1]
        assert (await queries.promo.get_code(pool, gone))["uses"] == 1
        assert (await shop.shop.ledger.balance(702)).available == D("1.00")
        await chat.assert_every_press_answered()
        assert (await verify_ledger(pool)).ok


async def test_a_discount_is_shown_spent_by_the_purchase_and_given_back_by_its_refund(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        fund_wallet(shop)
        pool = shop.shop.pool
        await new_code(pool, "SPRING", "discount", percent="10", cap="0.30", uses=10)
        chat = await buyer(shop, 703, "10", "en")
        chat.say("/promo Spring")
        await chat.screen("promo-discount-saved", code="SPRING", percent="10", cap="0.30 USD")

        # 250 stars are 5.00; 10 % would be 0.50, the cap keeps it at 0.30.
        chat.say("/buy_stars 250 @best_friend")
        confirmation = await chat.screen("promo-summary-total", total="4.70 USD")
        text = str(confirmation.text)
        assert (
            plain(
                chat.t(
                    "purchase-summary",
                    what=stars(chat, 250),
                    name="Best Friend",
                    recipient="best_friend",
                    price="5.00 USD",
                )
            )
            in text
        )
        assert plain(chat.t("promo-summary-discount", code="SPRING", percent="10", discount="0.30 USD")) in text
        assert plain(chat.t("purchase-balance-after", balance="5.30 USD")) in text
        assert shop.fragment is not None
        shop.fragment.fail_next("create_order", "USER_NOT_FOUND")  # a definite refusal: the order is refunded
        chat.press(confirmation, button_data(confirmation, "buy-ok:stars:"))
        [order] = await placed(shop, 703)
        assert order.price == D("4.70")  # what the user pays: the hold, and what the cost guard judges
        hold = await pool.fetchrow("SELECT list_price, discount FROM orders WHERE id = $1", order.id)
        assert (hold["list_price"], hold["discount"]) == (D("5.00"), D("0.30"))
        assert await pool.fetchval(
            "SELECT sum(p.amount) FROM ledger p JOIN movements m ON m.id = p.movement_id "
            "WHERE m.idempotency_key = $1 AND p.amount > 0",
            f"order:{order.id}:hold",
        ) == D("4.70")
        refunded = await wait_final(shop, order.id)
        assert refunded.state == "refunded" and await movements_of(shop, order.id) == ["hold", "release"]
        assert await balance(shop, 703) == (D("10.00"), D("0"))
        assert await pool.fetchval("SELECT state FROM promo_redemptions") == "pending"  # the user's again

        # The next purchase gets it: 100 stars are 2.00, 10 % off is 0.20.
        chat.say("/buy_stars 100 @best_friend")
        again = await chat.screen("promo-summary-total", total="1.80 USD")
        chat.press(again, button_data(again, "buy-ok:stars:"))
        _, second = await placed(shop, 703, 2)
        assert (await wait_final(shop, second.id)).state == "completed"
        assert second.price == D("1.80") and await balance(shop, 703) == (D("8.20"), D("0"))
        assert await pool.fetchval("SELECT order_id FROM promo_redemptions WHERE state = 'used'") == second.id

        # Spent: the third purchase is at the full price.
        chat.say("/buy_stars 100 @best_friend")
        third = await chat.screen(
            "purchase-summary", what=stars(chat, 100), name="Best Friend", recipient="best_friend", price="2.00 USD"
        )
        assert plain(chat.t("promo-summary-total", total="2.00 USD")) not in str(third.text)
        assert await pool.fetchval("SELECT uses FROM promo_codes") == 1
        await chat.assert_every_press_answered()
        assert (await verify_ledger(pool)).ok


async def test_the_cost_guard_judges_a_discounted_order_at_what_the_user_pays(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        fund_wallet(shop)
        pool = shop.shop.pool
        await new_code(pool, "HALF", "discount", percent="50", cap="5.00", uses=10)
        await make_user(pool, 704)
        await redeem(pool, shop.shop.ledger, 704, "HALF")
        await shop.shop.ledger.credit(
            user_id=704,
            amount=D("10"),
            key="seed:704",
            type=MovementType.BONUS,
            reference="test",
            source=SystemAccount.BONUSES,
        )
        shopfront = shop.shop.fulfilment.shopfront
        # 100 stars cost Fragment about 1.35 USD: fine at 2.00, a loss at the 1.00 the user would pay.
        quote = await shopfront.quote("stars", 100, "best_friend", user_id=704)
        assert (quote.list_price, quote.price) == (D("2.00"), D("1.00"))
        order = await wait_final(shop, (await shopfront.place(704, quote)).id)
        assert (order.state, order.refund_reason) == ("refunded", "refund-reason-price-changed")
        assert shop.fragment is not None and shop.fragment.payments == []
        assert await balance(shop, 704) == (D("10.00"), D("0"))
        assert await pool.fetchval("SELECT state FROM promo_redemptions") == "pending"
        assert (await verify_ledger(pool)).ok


def test_a_discount_never_leaves_less_than_a_cent_to_pay() -> None:
    assert apply_discount(1, "BIG", D("99.99"), D("1000"), D("1.00")).total == D("0.01")
    assert apply_discount(1, "CAP", D("50"), D("0.25"), D("1.00")).amount == D("0.25")
    assert apply_discount(1, "ODD", D("33.33"), D("10"), D("1.01")).amount == D("0.33")  # rounded down


async def test_an_admin_creates_and_switches_off_a_code_and_both_are_audited(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys={"admin_ids": (ADMIN,)}) as shop:
        pool = shop.shop.pool
        chat = await open_admin(shop)
        menu = await chat.screen("admin-title")
        chat.press(menu, AdminMenu(action="promo").pack())
        screen = await chat.screen("admin-promo-none")
        chat.press(screen, PromoAction(action="new", code_id=0).pack())
        await chat.screen("admin-promo-ask")
        for typed, key in (
            ("hello", "admin-promo-bad-format"),
            ("a! credit 1 10", "admin-promo-bad-name"),
            ("WELCOME credit -1 10", "admin-promo-bad-amount"),
            ("WELCOME credit 1.001 10", "admin-promo-bad-amount"),
            ("WELCOME discount 100 5 10", "admin-promo-bad-percent"),
            ("WELCOME credit 1 10 11", "admin-promo-bad-uses"),
            ("WELCOME credit 1 10 1 2020-01-01", "admin-promo-bad-date"),
        ):
            await reply(chat, typed, key)
        assert await pool.fetchval("SELECT count(*) FROM promo_codes") == 0 and await audit(shop, "promo.create") == []

        listed = await reply(chat, "welcome credit 1.50 100 2 2099-12-31", "admin-saved")
        assert "WELCOME" in str(listed.text)
        [created] = await audit(shop, "promo.create")
        assert created["admin_id"] == ADMIN and created["target"] == "promo:WELCOME"
        code = await pool.fetchrow("SELECT * FROM promo_codes")
        assert (code["kind"], code["amount"], code["max_uses"], code["per_user"]) == ("credit", D("1.50"), 100, 2)
        assert code["expires_at"] == datetime(2100, 1, 1, tzinfo=UTC)

        shop.telegram.add_user(705, first_name="Lee", language_code="en")
        user = Chat(shop, 705, "en")
        for answers in (1, 2):  # twice per user, as created
            user.say("/promo welcome")
            with anyio.fail_after(10):
                while len(shop.telegram.chat_messages(705)) < answers:
                    await anyio.sleep(0.02)
        credited = plain(user.t("promo-credited", code="WELCOME", amount="1.50 USD"))
        assert [m.text for m in shop.telegram.chat_messages(705)] == [credited, credited]
        assert (await shop.shop.ledger.balance(705)).available == D("3.00")

        chat.press(listed, PromoAction(action="edit", code_id=code["id"]).pack())
        await chat.screen("admin-promo-ask-limits")
        await reply(chat, "many", "admin-promo-bad-uses")
        await reply(chat, "1", "admin-promo-below-uses", uses=2)  # two are taken: nothing changes
        changed = await reply(chat, "300 1", "admin-saved")
        [change] = await audit(shop, "promo.change")
        assert change["target"] == "promo:WELCOME" and change["admin_id"] == ADMIN
        assert '"max_uses": 100' in str(change["before"]) and '"max_uses": 300' in str(change["after"])
        code = await pool.fetchrow("SELECT * FROM promo_codes")
        assert (code["max_uses"], code["per_user"], code["expires_at"], code["uses"]) == (300, 1, None, 2)

        chat.press(changed, PromoAction(action="toggle", code_id=code["id"]).pack())
        switched = await chat.screen("admin-promo-off")
        [off] = await audit(shop, "promo.off")
        chat.press(switched, PromoAction(action="new", code_id=0).pack())
        await chat.screen("admin-promo-ask")
        await reply(chat, "WELCOME credit 3 10", "admin-promo-taken", code="WELCOME")  # the name is taken
        assert (
            await pool.fetchval("SELECT count(*) FROM promo_codes") == 1 and len(await audit(shop, "promo.create")) == 1
        )
        assert off["target"] == "promo:WELCOME" and off["admin_id"] == ADMIN
        shop.telegram.add_user(706, first_name="Kim", language_code="en")
        other = Chat(shop, 706, "en")
        other.say("/promo WELCOME")
        await other.screen("promo-refused-switched-off", code="WELCOME")
        assert (await shop.shop.ledger.balance(706)).available == D("0")
        await chat.assert_every_press_answered()
        assert (await verify_ledger(pool)).ok


async def test_one_discount_serves_one_order_even_when_two_quotes_show_it(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool, "USD")
    shopfront = Shopfront(ShopConfig(star_price=D("0.02")), None, Orders(pool, ledger), ledger)
    await make_user(pool, 707)
    await ledger.credit(
        user_id=707,
        amount=D("10"),
        key="seed:707",
        type=MovementType.BONUS,
        reference="test",
        source=SystemAccount.BONUSES,
    )
    await new_code(pool, "ONCE", "discount", percent="25", cap="10", uses=10)
    await redeem(pool, ledger, 707, "once")
    # Two confirmations quoted while the discount was unspent (two chats, two instances): both show it.
    quotes = []
    for stars_count in (100, 200):
        price = shopfront.price("stars", stars_count)
        discount = await best_discount(pool, 707, price)
        assert discount is not None
        quotes.append(Quote("stars", stars_count, "durov", "Pavel", discount.total, "USD", discount))
    assert [q.price for q in quotes] == [D("1.50"), D("3.00")]
    order = await shopfront.place(707, quotes[1])
    assert (order.price, order.quantity) == (D("3.00"), 200)
    with pytest.raises(Refused, match="promo discount was used") as refused:
        await shopfront.place(707, quotes[0])
    assert refused.value.reason == "discount_gone"
    assert await ledger.balance(707) == Balance(D("7.00"), D("3.00"))  # only the one order is held
    assert await pool.fetchval("SELECT count(*) FROM orders") == 1
    assert await best_discount(pool, 707, D("2.00")) is None  # spent
    # Refunded, the discount is the user's again.
    await shopfront.orders.refund(order, "test")
    again = await best_discount(pool, 707, D("2.00"))
    assert again is not None and again.total == D("1.50")
    assert (await verify_ledger(pool)).ok
