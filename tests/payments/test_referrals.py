"""Referrals end to end (issue 18): a friend who starts the shop through a user's link and tops up earns
that user a bonus through the ledger, exactly once, whatever Heleket repeats; nobody else is bound or paid;
a refund after the bonus is flagged for the admin; switched off, links still open the bot and pay nothing.

Everything runs through the Telegram and Heleket emulators (real invoices, real webhooks confirmed at
Heleket's payment/info) on a real database, and `ledger verify` is clean after each test."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from shopbot.config import load_config
from shopbot.config.schema import ApiConfig, ReferralConfig
from shopbot.config.secret import Secret
from shopbot.errors import ConfigError
from shopbot.ledger.verify import verify_ledger
from shopbot.payments.referrals import bonus_for, code_from_payload
from shopbot.web.api_auth import mint_token
from tests.bot.test_admin import admin_shop, open_admin, press_menu, reply
from tests.bot.test_bot_purchase import Chat, plain
from tests.payments.helpers import inbox_drained
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
LINK = re.compile(r"https://t\.me/shopbot_test_bot\?start=(r[A-Za-z0-9]{8})")
API_SECRET = "a-long-enough-secret-for-hs256-signing"
INVITER, INVITEE, OTHER = 801, 802, 803


async def balance(shop: ShopUnderTest, user_id: int) -> Decimal:
    return (await shop.shop.ledger.balance(user_id)).available


async def say(shop: ShopUnderTest, user_id: int, text: str) -> str:
    """The user types text; the text of the bot's next new message to them."""

    def sent() -> list[str]:
        return [
            c.params["text"]
            for c in shop.telegram.calls
            if c.method == "sendMessage" and c.params["chat_id"] == user_id
        ]

    before = len(sent())
    shop.telegram.send_text(user_id, text)
    with anyio.fail_after(10):
        while len(sent()) <= before:
            await anyio.sleep(0.02)
    return sent()[before]


async def link_of(shop: ShopUnderTest, user_id: int) -> str:
    """The user asks for their link with /referral; the payload it carries."""
    text = await say(shop, user_id, "/referral")
    match = LINK.search(text)
    assert match, text
    return match.group(1)


async def join(shop: ShopUnderTest, user_id: int, payload: str) -> None:
    """A user opens the bot through a link (Telegram sends `/start <payload>`) and is welcomed."""
    shop.telegram.add_user(user_id, first_name=f"U{user_id}")
    assert "U" in await say(shop, user_id, f"/start {payload}".strip())


async def inviter_of(shop: ShopUnderTest, user_id: int) -> int | None:
    return await shop.shop.pool.fetchval("SELECT invited_by FROM users WHERE id = $1", user_id)


async def top_up(shop: ShopUnderTest, user_id: int, amount: str) -> str:
    """A real Heleket invoice, paid at the emulator; returns once its webhook was answered and settled."""
    assert shop.heleket is not None
    invoice = await shop.shop.topups.create(user_id, D(amount))
    shop.heleket.pay(invoice.order_id)
    await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
    await inbox_drained(shop.shop.pool)  # the settler credits after the answer
    return invoice.order_id


async def assert_ledger_clean(shop: ShopUnderTest) -> None:
    report = await verify_ledger(shop.shop.pool)
    assert report.ok, report.problems


def test_a_payload_is_short_opaque_and_anything_else_is_no_code() -> None:
    assert code_from_payload("rAb3dE6gH") == "Ab3dE6gH"
    for junk in ("r801", "801", "rAb3dE6gH9", "r' OR 1=1", "", None, "xAb3dE6gH"):
        assert code_from_payload(junk) is None
    # Rounded down to the cent: 5 % of 7.99 is 0.3995, paid as 0.39; of 0.19 it is nothing at all.
    assert bonus_for(D("7.99"), D("5")) == D("0.39") and bonus_for(D("0.19"), D("5")) == D("0.00")


@pytest.mark.parametrize("section", ['percent = "150"', 'percent = "-1"', "months = 0", 'percent = "NaN"'])
def test_a_referral_share_outside_0_to_100_percent_or_no_months_is_refused(tmp_path: Path, section: str) -> None:
    path = tmp_path / "shopbot.toml"
    path.write_text(f"[referral]\n{section}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "referral." in str(caught.value)


async def test_a_friend_who_joins_through_the_link_and_tops_up_10_earns_the_inviter_exactly_0_50_once(
    database_url: str,
) -> None:
    async with running_shop(database_url, heleket=True, api=ApiConfig(jwt_secret=Secret(API_SECRET))) as shop:
        assert shop.heleket is not None
        shop.telegram.add_user(INVITER, first_name="Inna", language_code="ru")
        inviter = Chat(shop, INVITER, "ru")
        payload = await link_of(shop, INVITER)
        assert str(INVITER) not in payload
        assert await link_of(shop, INVITER) == payload  # the same link every time

        await join(shop, INVITEE, payload)
        assert await inviter_of(shop, INVITEE) == INVITER
        await inviter.screen("notice-referral-joined")  # told in Russian, without the friend's name

        order_id = await top_up(shop, INVITEE, "10")
        assert await balance(shop, INVITEE) == D("10")
        assert await balance(shop, INVITER) == D("0.50")
        await inviter.screen("notice-referral-bonus", amount="0.50 USD", balance="0.50 USD")

        # Heleket repeats the webhook (or anyone replays it): no second bonus, no second credit.
        shop.heleket.send_webhook(order_id, "paid")
        await shop.heleket.wait_for_webhook("paid", order_id=order_id)
        await inbox_drained(shop.shop.pool)  # the settler credits after the answer
        assert (await balance(shop, INVITER), await balance(shop, INVITEE)) == (D("0.50"), D("10"))

        inviter.say("/referral")
        await inviter.screen("referral-earned", amount="0.50 USD", count=1)
        await inviter.screen("referral-joined", count=1)
        inviter.say("/history")
        await inviter.screen("history-referral-bonus", amount="+0.50 USD")

        token = mint_token(API_SECRET, scopes=["transactions:read"], user_id=INVITER, ttl_seconds=60)
        answer = await shop.http.get("/api/v1/transactions", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert [(t["type"], D(t["amount"])) for t in answer.json()["transactions"]] == [("bonus", D("0.50"))]
        await assert_ledger_clean(shop)


async def test_self_invites_second_links_existing_users_and_old_invitees_pay_nothing(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        shop.telegram.add_user(INVITER, first_name="Ann")
        payload = await link_of(shop, INVITER)
        shop.telegram.add_user(OTHER, first_name="Olga")
        other_payload = await link_of(shop, OTHER)

        # The inviter opens their own link: nobody is bound, and their own top-up earns nobody anything.
        assert "Ann" in await say(shop, INVITER, f"/start {payload}")
        assert await inviter_of(shop, INVITER) is None

        # Unknown and malformed payloads open the bot and bind nobody.
        for i, junk in enumerate(("rZZZZZZZZ", f"r{INVITER}", "hello")):
            await join(shop, 810 + i, junk)
            assert await inviter_of(shop, 810 + i) is None

        # A friend comes through the first link, then through another: the first stays for ever.
        await join(shop, INVITEE, payload)
        assert "U" in await say(shop, INVITEE, f"/start {other_payload}")
        assert await inviter_of(shop, INVITEE) == INVITER

        # Someone who already topped up is not new: a link binds them to nobody.
        await join(shop, 820, "")
        await top_up(shop, 820, "5")
        await say(shop, 820, f"/start {payload}")
        assert await inviter_of(shop, 820) is None

        await top_up(shop, INVITER, "10")
        await top_up(shop, INVITEE, "10")
        assert (await balance(shop, INVITER), await balance(shop, OTHER)) == (D("10.50"), D("0"))

        # After [referral] months the friend's top-ups earn nothing more.
        await shop.shop.pool.execute(
            "UPDATE users SET invited_at = now() - interval '13 months' WHERE id = $1", INVITEE
        )
        await top_up(shop, INVITEE, "10")
        assert await balance(shop, INVITER) == D("10.50")
        assert await shop.shop.pool.fetchval("SELECT count(*) FROM movements WHERE type = 'bonus'") == 1
        await assert_ledger_clean(shop)


async def test_a_refund_after_a_paid_bonus_is_flagged_and_the_admin_sees_inviters_and_invitees(
    database_url: str,
) -> None:
    async with admin_shop(database_url) as shop:
        assert shop.heleket is not None
        shop.telegram.add_user(INVITER, first_name="Ann", username="ann_invites")
        payload = await link_of(shop, INVITER)
        await join(shop, INVITEE, payload)
        order_id = await top_up(shop, INVITEE, "20")
        assert await balance(shop, INVITER) == D("1.00")

        shop.heleket.refund(order_id)
        await shop.heleket.wait_for_webhook("refund_paid", order_id=order_id)
        await inbox_drained(shop.shop.pool)  # the settler credits after the answer
        with anyio.fail_after(10):
            while not await shop.shop.pool.fetchval("SELECT flagged FROM referral_bonuses"):
                await anyio.sleep(0.05)
        assert await balance(shop, INVITER) == D("1.00")  # never taken back blindly: the operator decides

        admin = await open_admin(shop)
        await press_menu(admin, "dash")
        t = admin.t
        for line in (
            t("admin-referral-figures", count=1, bonuses=1, amount="1.00 USD"),
            t("admin-referral-flagged", count=1),
            t("admin-referral-top", what="Ann (@ann_invites) 1.00 USD"),
        ):
            await admin.showing(plain(line))

        admin.say("/admin")
        await press_menu(admin, "users")
        await reply(
            admin,
            str(INVITER),
            "admin-referral-invitee-flagged",
            what=f"U{INVITEE} ({INVITEE})",
            amount="1.00 USD",
            count=1,
        )
        await admin.screen("admin-referral-not-invited")
        admin.say("/admin")
        await press_menu(admin, "users")
        joined = await shop.shop.pool.fetchval("SELECT invited_at FROM users WHERE id = $1", INVITEE)
        await reply(
            admin, str(INVITEE), "admin-referral-invited-by", what="Ann (@ann_invites)", when=f"{joined:%Y-%m-%d}"
        )
        await assert_ledger_clean(shop)


async def test_switched_off_links_still_open_the_bot_but_bind_and_pay_nothing(database_url: str) -> None:
    async with running_shop(database_url, heleket=True, referral=ReferralConfig(enabled=False)) as shop:
        shop.telegram.add_user(INVITER, first_name="Ann")
        assert plain(Chat(shop, INVITER, "en").t("referral-off")) in plain(await say(shop, INVITER, "/referral"))
        code = "Ab3dE6gH"
        await shop.shop.pool.execute("UPDATE users SET referral_code = $1 WHERE id = $2", code, INVITER)

        await join(shop, INVITEE, f"r{code}")
        assert await inviter_of(shop, INVITEE) is None
        await top_up(shop, INVITEE, "10")
        assert await balance(shop, INVITER) == D("0")
        await assert_ledger_clean(shop)


async def test_only_clean_credits_pay_a_bonus_whichever_path_credits_them(database_url: str) -> None:
    async with running_shop(database_url, heleket=True, heleket_keys={"underpayment": "credit_paid_amount"}) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        shop.telegram.add_user(INVITER, first_name="Ann")
        await join(shop, INVITEE, await link_of(shop, INVITER))

        # An underpaid top-up is credited what was paid, but flagged for the operator: it earns no bonus.
        under = await shop.shop.topups.create(INVITEE, D("10"))
        shop.heleket.underpay(under.order_id, amount=D("4"))
        shop.heleket.expire(under.order_id)
        await shop.heleket.wait_for_webhook("wrong_amount", order_id=under.order_id)
        await inbox_drained(shop.shop.pool)  # the settler credits after the answer
        assert D("3.9") <= await balance(shop, INVITEE) <= D("4")
        assert await balance(shop, INVITER) == D("0")

        # A missed webhook credited by the reconciler pays the bonus with it, once; 5 % of 7.50 is 0.375,
        # paid as 0.37 (rounded down: the shop never pays a fraction of a cent it does not have).
        invoice = await shop.shop.topups.create(INVITEE, D("7.50"))
        shop.heleket.silence_webhooks()
        shop.heleket.pay(invoice.order_id)
        assert await shop.shop.reconciler.reconcile_once() == {"credited": 1}
        assert await shop.shop.reconciler.reconcile_once() == {}
        assert await balance(shop, INVITER) == D("0.37")
        await assert_ledger_clean(shop)
