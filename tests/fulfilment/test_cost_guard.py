"""The cost guard (issue 17): an order whose Fragment cost, at Heleket's TON rate, leaves less than the minimum
margin of its price, or whose cost cannot be judged for want of a rate, is never paid; the buyer gets their
money back and is told, the operator hears once an hour. Against the Fragment and Heleket emulators over HTTP
and a real database; the books balance after each.

The test shop sells a star for 0.02 USD. The Fragment emulator asks 0.0044 TON a star plus its 2 % fee, and its
Heleket says a TON is 3 USD: 100 stars cost 1.3464 USD (a margin of 32.68 %), and 60 % more, 2.1542 USD, is
above the price of 2.00 USD."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import pytest

from shopbot.db.queries import queries
from shopbot.fulfilment.costs import RATE_CACHE_SECONDS, RateReading, TonRates, check_cost, margin_percent, unit_costs
from shopbot.ledger import SystemAccount
from shopbot.ledger.verify import verify_ledger
from shopbot.payments.heleket import HeleketClient
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from tests.bot.test_admin import ADMIN
from tests.fulfilment.helpers import fund_wallet, funded_buyer, movements_of, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
NORMAL_PER_STAR = D("0.0044")
RAISED_PER_STAR = NORMAL_PER_STAR * D("1.6")


def emulator() -> FragmentEmulator:
    fragment = FragmentEmulator(ton_per_star=NORMAL_PER_STAR)
    fragment.add_user("best_friend", "Best Friend")
    return fragment


async def buy(shop: ShopUnderTest, buyer: int, stars: int = 100) -> int:
    quote = await shop.shop.fulfilment.shopfront.quote("stars", stars, "best_friend")
    return (await shop.shop.fulfilment.shopfront.place(buyer, quote)).id


def admin_alerts(shop: ShopUnderTest) -> list[str]:
    return [
        call.params["text"]
        for call in shop.telegram.calls
        if call.method == "sendMessage" and call.params.get("chat_id") == ADMIN
    ]


def refused(shop: ShopUnderTest, reason: str) -> float:
    value = shop.shop.metrics.registry.get_sample_value("shopbot_orders_refused_total", {"reason": reason})
    assert value is not None  # exported from the start
    return value


@asynccontextmanager
async def shop_with_admin(database_url: str, fragment: FragmentEmulator) -> AsyncIterator[ShopUnderTest]:
    async with running_shop(database_url, fragment=fragment, telegram_keys={"admin_ids": (ADMIN,)}) as shop:
        shop.telegram.add_user(ADMIN, first_name="Ops", language_code="en")
        fund_wallet(shop)
        yield shop


async def test_an_order_costing_more_than_its_price_is_refused_before_anything_is_signed(database_url: str) -> None:
    fragment = emulator()
    fragment.set_ton_cost(per_star=RAISED_PER_STAR)
    async with shop_with_admin(database_url, fragment) as shop:
        buyer = await funded_buyer(shop, 901, "10")
        await queries.users.upsert_user(shop.shop.pool, buyer, None, "Buyer", None, "ru", False)  # reads Russian
        first, second = [await wait_final(shop, await buy(shop, buyer)) for _ in range(2)]
        for order in (first, second):
            assert (order.state, order.refund_reason) == ("refunded", "refund-reason-price-changed")
            assert order.prepared is None and order.prepared_until is None  # nothing was ever signed
            assert await movements_of(shop, order.id) == ["hold", "release"]
        assert fragment.payments == []
        assert (await shop.shop.ledger.balance(buyer)).available == D("10.00")
        notice = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == buyer and f"#{first.id}" in c.params["text"]
        )
        assert "цена изменилась" in notice.params["text"] and "ничего не списано" in notice.params["text"]
        await anyio.sleep(0.3)  # any second alert would have been sent by now
        [alert] = admin_alerts(shop)  # one alert for both orders
        assert f"Order #{first.id}" in alert and "0.71808 TON = 2.15 USD" in alert
        assert "price of 2.00 USD" in alert and "margin of -7.71%" in alert
        assert refused(shop, "below_margin") == 2 and refused(shop, "no_rate") == 0
        # What Fragment asked is known even though nothing was bought: the newest cost per star.
        assert (await unit_costs(shop.shop.pool)).star == RAISED_PER_STAR * D("1.02")
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_at_a_normal_cost_the_order_is_paid_and_its_cost_booked_at_the_rate(database_url: str) -> None:
    fragment = emulator()
    async with shop_with_admin(database_url, fragment) as shop:
        buyer = await funded_buyer(shop, 902, "10")
        done = await wait_final(shop, await buy(shop, buyer))
        assert done.state == "completed"
        assert len(fragment.payments_for(str(done.fragment_order_id))) == 1
        assert done.cost_ton == D("0.4488")
        costs = await shop.shop.ledger.account_id(SystemAccount.FRAGMENT_COSTS, None)
        assert await shop.shop.pool.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger WHERE account_id = $1", costs
        ) == D("1.35")  # 0.4488 TON at 3 USD
        assert (await shop.shop.ledger.balance(buyer)).available == D("8.00")
        assert admin_alerts(shop) == []
        assert refused(shop, "below_margin") == 0
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_without_a_known_ton_rate_nothing_is_sold_blind(database_url: str) -> None:
    fragment = emulator()
    async with shop_with_admin(database_url, fragment) as shop:
        assert shop.heleket is not None
        shop.heleket.set_usd_price("TON", None)  # Heleket's lists no longer know TON
        buyer = await funded_buyer(shop, 903, "10")
        order = await wait_final(shop, await buy(shop, buyer))
        assert (order.state, order.refund_reason) == ("refunded", "refund-reason-price-unconfirmed")
        assert fragment.payments == []
        assert (await shop.shop.ledger.balance(buyer)).available == D("10.00")
        notice = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == buyer and "was refunded" in c.params["text"]
        )
        assert "could not confirm the current price" in notice.params["text"]
        assert "nothing was charged" in notice.params["text"]
        alert = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == ADMIN)
        assert f"Order #{order.id}" in alert.params["text"] and "no TON rate" in alert.params["text"]
        assert refused(shop, "no_rate") == 1
        assert (await verify_ledger(shop.shop.pool)).ok


# --- TonRates against the Heleket emulator over HTTP, on a clock the test moves ---------------------------


@pytest.fixture
async def heleket() -> AsyncIterator[tuple[HeleketEmulator, HeleketClient]]:
    emulator = HeleketEmulator(merchant_uuid="8b03432e-385b-4670-8d06-064591096795", api_key="KEY_0123456789")
    async with anyio.create_task_group() as group:
        port = await group.start(serve_heleket_emulator, emulator)
        async with HeleketClient(
            base_url=f"http://127.0.0.1:{port}",
            merchant_uuid=emulator.merchant_uuid,
            api_key="KEY_0123456789",
            retries=0,
        ) as client:
            yield emulator, client
        group.cancel_scope.cancel()


async def test_a_ton_rate_is_kept_five_minutes_and_never_used_older_than_max_rate_age(
    heleket: tuple[HeleketEmulator, HeleketClient],
) -> None:
    emulator, client = heleket
    now = [1_000_000.0]
    rates = TonRates(client, "usd", max_age=3600, clock=lambda: now[0])
    assert rates.latest() is None  # nothing held before anyone asked
    assert await rates.reading() == RateReading(D(3), 1_000_000.0)
    emulator.set_usd_price("TON", D("4.5"))
    now[0] += RATE_CACHE_SECONDS - 1
    assert await rates.rate() == D(3)  # cached
    now[0] += 1
    assert await rates.rate() == D("4.5")  # asked again
    emulator.set_usd_price("TON", None)  # Heleket stops quoting TON: the last good rate serves while young
    now[0] += 3000
    assert await rates.rate() == D("4.5")
    now[0] += 601
    assert await rates.reading() is None  # 3601 s old: nothing rather than a stale guess
    assert rates.latest() is None
    emulator.set_usd_price("TON", D("5"))
    now[0] += 30
    assert await rates.rate() == D(5)


async def test_no_heleket_means_no_rate() -> None:
    assert await TonRates(None, "USD", max_age=3600).reading() is None


def test_the_guard_allows_exactly_down_to_the_minimum_margin() -> None:
    assert check_cost(D("2.00"), D("0.5"), D(3), 25).refusal is None  # 1.50: a margin of exactly 25 %
    assert check_cost(D("2.00"), D("0.5"), D(3), 25.01).refusal == "below_margin"
    assert check_cost(D("2.00"), D("0.7"), D(3), 0).refusal == "below_margin"  # 2.10: below cost
    assert check_cost(D("2.00"), D("0.5"), None, 0).refusal == "no_rate"
    assert margin_percent(D("2.00"), D("1.3464")) == D("32.68")
    assert margin_percent(D("2.00"), D("2.15424")) == D("-7.71")


def test_the_emulators_refuse_bad_prices_and_keep_the_old_ones() -> None:
    fragment = FragmentEmulator()
    with pytest.raises(ValueError, match="months"):
        fragment.set_ton_cost(per_star=D("0.01"), premium={4: D("3")})
    with pytest.raises(ValueError, match="positive"):
        fragment.set_ton_cost(premium={3: D("-1")})
    assert (fragment.pricing.ton_per_star, fragment.pricing.premium_ton[3]) == (D("0.0044"), D("4.0"))
    fragment.set_ton_cost(premium={12: D("10")})
    assert (fragment.pricing.ton_per_star, fragment.pricing.premium_ton[12]) == (D("0.0044"), D("10"))
    heleket = HeleketEmulator(merchant_uuid="m", api_key="k")
    with pytest.raises(ValueError, match="positive"):
        heleket.set_usd_price("TON", D(0))
    with pytest.raises(ValueError, match="number"):
        heleket.set_usd_price("TON", "lots")  # type: ignore[arg-type]
