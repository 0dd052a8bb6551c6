"""Recipient lookups as buyers meet them, through the real bot, the Telegram and Fragment emulators and a real
database: a slow Fragment or a crowd typing usernames never holds up a payment, excess lookups are told "busy"
at once, buyers naming the same recipient share one lookup and a found one is remembered, and a username
nobody has is the buyer's mistake in whichever shape the service says so, asked again every time."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from shopbot.fulfilment.products import Quote
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from tests.bot.test_bot_purchase import Chat, balance, buyer, orders_of, plain, stars
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
LOOKUP_CLIENTS, LOOKUP_WAIT = 8, 3.0  # the defaults of [fragment] lookup_clients and lookup_wait_seconds
LATENCY = 0.05  # seconds the emulated Fragment adds to every request
SLOW_LOOKUP = 12.0  # seconds a slow Fragment takes to answer user_info (under the default lookup_timeout)


def fragment_emulator() -> FragmentEmulator:
    emulator = FragmentEmulator(latency=LATENCY)
    emulator.add_user("best_friend", "Best Friend")
    return emulator


def lookups_asked(shop: ShopUnderTest) -> int:
    """How many user_info requests reached the Fragment emulator."""
    assert shop.fragment is not None
    return len([call for call in shop.fragment.calls if call.endpoint == "user_info"])


async def answers(chats: list[Chat], texts: dict[str, str], timeout: float) -> dict[int, tuple[str, float]]:
    """For each chat, which of `texts` (name -> text) it was answered with, and when (anyio time)."""
    seen: dict[int, tuple[str, float]] = {}
    with anyio.move_on_after(timeout):
        while len(seen) < len(chats):
            for chat in chats:
                if chat.user_id in seen:
                    continue
                shown = [m.text or "" for m in chat.shop.telegram.chat_messages(chat.user_id)]
                for name, text in texts.items():
                    if any(text in message for message in shown):
                        seen[chat.user_id] = (name, anyio.current_time())
            await anyio.sleep(0.02)
    return seen


async def test_fifty_lookups_against_a_slow_fragment_never_hold_up_five_payments(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        fund_wallet(shop)
        payers = [await funded_buyer(shop, 700 + i, "10") for i in range(5)]
        crowd = [await buyer(shop, 800 + i, "10", "en") for i in range(50)]
        shop.fragment.any_user = True  # each buyer names a different recipient: one lookup each
        shop.fragment.delay_next("user_info", SLOW_LOOKUP, times=1000)

        started = anyio.current_time()
        for n, chat in enumerate(crowd):
            chat.say(f"/buy_stars 50 @friend_{n:03d}")
        await anyio.sleep(0.5)  # the lookups are out (and waiting on Fragment) before the orders come
        quote = Quote("stars", 50, "best_friend", "Best Friend", D("1.00"), "USD")
        placed = [await shop.shop.fulfilment.shopfront.place(user_id, quote) for user_id in payers]
        finished: list[float] = []

        async def paid(order_id: int) -> None:
            assert (await wait_final(shop, order_id, timeout=3 * SLOW_LOOKUP)).state == "completed"
            finished.append(anyio.current_time())

        async with anyio.create_task_group() as group:
            for order in placed:
                group.start_soon(paid, order.id)
            english = crowd[0]
            texts = {"busy": plain(english.t("purchase-busy")), "confirmation": plain(english.t("purchase-check"))}
            answered = await answers(crowd, texts, timeout=2 * SLOW_LOOKUP)

        # Each order is paid in a handful of requests at LATENCY each: all five are done while the first slow
        # lookups are still waiting on Fragment, i.e. no payment waited for a lookup (on one shared client
        # they queued behind 50 lookups of SLOW_LOOKUP seconds each).
        assert len(finished) == 5 and max(finished) - started < SLOW_LOOKUP
        assert sum(len(payment.order_ids) for payment in shop.fragment.payments) == 5

        # Every buyer in the crowd got an answer: as many as there are lookup clients were looked up, the rest
        # were told "busy" within the lookup wait, long before a slow lookup came back; none hangs.
        assert len(answered) == 50, f"{50 - len(answered)} buyers got no answer"
        outcomes = [name for name, _ in answered.values()]
        assert outcomes.count("confirmation") == LOOKUP_CLIENTS
        assert outcomes.count("busy") == 50 - LOOKUP_CLIENTS
        busy_at = [at for name, at in answered.values() if name == "busy"]
        assert max(busy_at) - started < SLOW_LOOKUP

        # A lookup that was told "busy" never reaches Fragment later: only the looked-up ones asked it.
        await anyio.sleep(1.0)
        assert lookups_asked(shop) == LOOKUP_CLIENTS
        for chat in crowd:
            assert await orders_of(shop, chat.user_id) == [] and await balance(shop, chat.user_id) == (D("10"), D("0"))
        assert (await verify_ledger(shop.shop.pool)).ok
    lookups = shop.shop.config.fragment
    assert (lookups.lookup_clients, lookups.lookup_wait_seconds) == (LOOKUP_CLIENTS, LOOKUP_WAIT)
    assert lookups.lookup_timeout > SLOW_LOOKUP


async def test_a_buyer_has_one_lookup_at_a_time(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        chat = await buyer(shop, 901, "10", "ru")
        shop.fragment.delay_next("user_info", 3.0)
        chat.say("/buy_stars 50 @best_friend")
        await chat.screen("purchase-looking-up", recipient="best_friend")
        await anyio.sleep(0.3)
        chat.say("/buy_stars 100 @best_friend")  # impatient: the same buyer again while the first is out
        busy = await chat.screen("purchase-busy")
        confirmation = await chat.screen(
            "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
        )
        assert busy.message_id != confirmation.message_id
        assert len([call for call in shop.fragment.calls if call.endpoint == "user_info"]) == 1
        assert await orders_of(shop, 901) == []


async def test_an_unknown_username_is_the_buyers_mistake_in_either_wire_shape_and_never_opens_the_circuit(
    database_url: str,
) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        fund_wallet(shop)
        chat = await buyer(shop, 902, "10", "en")
        not_found = plain(chat.t("purchase-not-found", recipient="nobody_here"))
        unavailable = plain(chat.t("purchase-unavailable"))

        def shown(text: str) -> int:
            return sum(text in (m.text or "") for m in shop.telegram.chat_messages(902))

        # found:false, then the service's error answers for the same thing (USER_NOT_FOUND is a 404), twice
        # over: more than enough unknown names to open the circuit if they counted as failures.
        shapes = [None, "USER_NOT_FOUND", "RECIPIENT_NOT_FOUND", "INVALID_USERNAME"] * 2
        assert len(shapes) > shop.shop.config.circuit_breaker.failure_threshold
        for tried, code in enumerate(shapes, 1):
            if code is not None:
                shop.fragment.fail_next("user_info", code)
            chat.say("/buy_stars 50 @nobody_here")
            with anyio.fail_after(10):
                while shown(not_found) + shown(unavailable) < tried:
                    await anyio.sleep(0.02)
            assert (shown(not_found), shown(unavailable)) == (tried, 0), f"answered as an outage: {code}"
        assert [call.error_code for call in shop.fragment.calls if call.endpoint == "user_info"] == shapes
        assert await shop.shop.fulfilment.breaker.state() == "closed"

        # Nothing was held or bought, and the buyer can go on with the right name.
        assert await orders_of(shop, 902) == [] and await balance(shop, 902) == (D("10"), D("0"))
        chat.say("@best_friend")
        await chat.screen(
            "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
        )


@pytest.mark.parametrize("code", ["USER_NOT_FOUND", "RECIPIENT_NOT_FOUND"])
async def test_the_sandbox_switch_for_unknown_users_answers_the_buyer_the_same_way(
    database_url: str, code: str
) -> None:
    emulator = fragment_emulator()
    emulator.any_user = True  # as in the sandbox: every name is somebody's, except those marked unknown
    emulator.add_unknown_user("nobody_here")
    emulator.unknown_user_answer = code  # type: ignore[assignment]
    async with running_shop(database_url, fragment=emulator) as shop:
        chat = await buyer(shop, 903, "10", "ru")
        chat.say("/buy_stars 50 @nobody_here")
        await chat.screen("purchase-not-found", recipient="nobody_here")
        assert await shop.shop.fulfilment.breaker.state() == "closed"


async def test_buyers_naming_the_same_recipient_at_once_share_one_lookup_and_the_next_needs_none(
    database_url: str,
) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        crowd = [await buyer(shop, 1000 + i, "10", "en") for i in range(3 * LOOKUP_CLIENTS)]
        shop.fragment.delay_next("user_info", 1.0)  # Fragment is slow to answer: every buyer asks meanwhile
        for chat in crowd:
            chat.say("/buy_stars 50 @best_friend")
        for chat in crowd:
            await chat.screen(
                "purchase-summary", what=stars(chat, 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
            )
        assert lookups_asked(shop) == 1

        # A buyer a moment later, typing the name in other letters, is answered from what was found: at once,
        # with no "looking up" message before the confirmation.
        late = await buyer(shop, 1100, "10", "ru")
        late.say("/buy_stars 100 @Best_Friend")
        await late.screen(
            "purchase-summary", what=stars(late, 100), name="Best Friend", recipient="best_friend", price="2.00 USD"
        )
        assert lookups_asked(shop) == 1
        looking = late.t("purchase-looking-up", recipient="best_friend")
        sent = [
            c.params["text"] for c in shop.telegram.calls if c.method == "sendMessage" and c.params["chat_id"] == 1100
        ]
        assert len(sent) == 1 and looking not in sent


async def test_a_name_nobody_has_is_asked_again_next_time_and_found_once_someone_takes_it(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        chat = await buyer(shop, 1200, "10", "en")
        chat.say("/buy_stars 50 @brand_new_name")
        await chat.screen("purchase-not-found", recipient="brand_new_name")
        assert lookups_asked(shop) == 1

        shop.fragment.add_user("brand_new_name", "Newcomer")  # the recipient has just set that username
        chat.say("@brand_new_name")
        await chat.screen(
            "purchase-summary", what=stars(chat, 50), name="Newcomer", recipient="brand_new_name", price="1.00 USD"
        )
        assert lookups_asked(shop) == 2


async def test_a_failed_lookup_answers_everyone_who_asked_with_it_and_is_not_remembered(database_url: str) -> None:
    async with running_shop(database_url, fragment=fragment_emulator()) as shop:
        assert shop.fragment is not None
        crowd = [await buyer(shop, 1300 + i, "10", "en") for i in range(4)]
        shop.fragment.fail_next("user_info", status=503)
        shop.fragment.delay_next("user_info", 1.0)
        for chat in crowd:
            chat.say("/buy_stars 50 @best_friend")
        for chat in crowd:
            await chat.screen("purchase-unavailable")
        assert lookups_asked(shop) == 1

        crowd[0].say("/buy_stars 50 @best_friend")  # Fragment is back: asked again, and found
        await crowd[0].screen(
            "purchase-summary", what=stars(crowd[0], 50), name="Best Friend", recipient="best_friend", price="1.00 USD"
        )
        assert lookups_asked(shop) == 2
