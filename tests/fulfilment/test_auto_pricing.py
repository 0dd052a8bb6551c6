"""Automatic prices ([pricing] mode = "auto"): the star and Premium prices follow what Fragment asks in TON
times Heleket's TON rate plus the markup, within the floor and ceiling, audited with the actor `pricing`.
End to end through the Fragment and Heleket emulators; a repricer pass is driven directly (the schema's
shortest refresh is 30 s), exactly the pass the running service makes every refresh_seconds."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import ROUND_CEILING, Decimal

import anyio
import pytest

from shopbot.config.schema import PricingConfig, ShopConfig
from shopbot.fulfilment.costs import UnitCosts
from shopbot.fulfilment.orders import Order
from shopbot.fulfilment.products import PriceList
from shopbot.fulfilment.repricer import Repricer, auto_prices
from shopbot.fulfilment.settings import ShopSettings
from shopbot.ledger.verify import verify_ledger
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.heleket_invoices import USD_PRICES
from tests.bot.test_bot_purchase import Chat, buyer, plain
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
TON_USD = USD_PRICES["TON"]  # the Heleket emulator's TON rate
AUTO = PricingConfig(
    mode="auto",
    refresh_seconds=30.0,
    markup_percent=20.0,
    price_step=D("0.001"),
    premium_step=D("0.01"),
    floor=D("0.01"),
    ceiling=D("0.10"),
)
# High enough that the first order (at the configured price) sells at a margin whatever the guard says.
SHOP = ShopConfig(star_price=D("0.05"))


def star_price_for(ton_per_star: Decimal) -> Decimal:
    """What the operator expects: cost × rate × 1.20, rounded up to 0.001, within 0.01..0.10."""
    priced = (ton_per_star * TON_USD * D("1.2") / D("0.001")).to_integral_value(rounding=ROUND_CEILING) * D("0.001")
    return min(max(priced, AUTO.floor), AUTO.ceiling)


@pytest.fixture
async def shop(database_url: str) -> AsyncIterator[ShopUnderTest]:
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    async with running_shop(
        database_url,
        heleket=True,
        fragment=fragment,
        pricing=AUTO,
        shop=SHOP,
        fragment_keys={"payment_ttl_seconds": 5, "landing_margin_seconds": 1.0},
    ) as shop:
        fund_wallet(shop, 200)
        yield shop


async def teach_cost(shop: ShopUnderTest, user_id: int, product: str, quantity: int) -> Order:
    """An order created at Fragment, so the shop learns what Fragment asks now (sold or refused, it is final)."""
    shopfront = shop.shop.fulfilment.shopfront
    order = await shopfront.place(user_id, await shopfront.quote(product, quantity, "best_friend"))
    done = await wait_final(shop, order.id)
    assert done.cost_ton is not None
    return done


async def quoted_price(chat: Chat, count: int) -> str:
    """The price on the confirmation the bot shows, now, for `count` Stars to @best_friend."""
    telegram = chat.shop.telegram
    before = len(telegram.chat_messages(chat.user_id))
    chat.say(f"/buy_stars {count} @best_friend")
    with anyio.fail_after(10):
        while not (
            newest := [
                m
                for m in telegram.chat_messages(chat.user_id)[before:]
                if m.text and plain(chat.t("purchase-check")) in m.text
            ]
        ):
            await anyio.sleep(0.02)
    found = re.search(r"(\d+\.\d\d USD)", plain(str(newest[-1].text)).split(plain(chat.t("purchase-check")))[0])
    assert found, newest[-1].text
    return found.group(1)


async def pricing_audit(shop: ShopUnderTest) -> list[tuple[str, object, object]]:
    rows = await shop.shop.pool.fetch(
        "SELECT actor, before->>'star_price' AS b, after->>'star_price' AS a FROM audit_log "
        "WHERE actor = 'pricing' ORDER BY id"
    )
    return [(row["actor"], row["b"], row["a"]) for row in rows]


async def test_star_price_follows_fragments_cost_at_the_next_pass_within_floor_and_ceiling(shop: ShopUnderTest) -> None:
    assert shop.fragment is not None and shop.shop.repricer is not None
    repricer = shop.shop.repricer
    chat = await buyer(shop, 701, "100", "en")
    # Nothing sold yet: no cost is known, the configured price stays and nothing is audited.
    assert await repricer.reprice() is None
    assert await quoted_price(chat, 50) == "2.50 USD"

    first = await teach_cost(shop, 701, "stars", 50)
    await repricer.reprice()
    expected = star_price_for(first.cost_ton / 50)
    assert D("0.01") < expected < D("0.10")
    assert await quoted_price(chat, 50) == f"{expected * 50:.2f} USD"
    assert await repricer.reprice() is None  # the same cost again: no change, no audit entry

    shop.fragment.set_ton_cost(per_star=D("0.0088"))  # Fragment doubles its price
    doubled = await teach_cost(shop, 701, "stars", 50)
    await repricer.reprice()
    assert star_price_for(doubled.cost_ton / 50) > expected
    assert await quoted_price(chat, 50) == f"{star_price_for(doubled.cost_ton / 50) * 50:.2f} USD"

    shop.fragment.set_ton_cost(per_star=D("0.5"))  # a reading far above: the ceiling holds
    await teach_cost(shop, 701, "stars", 50)
    await repricer.reprice()
    assert await quoted_price(chat, 50) == "5.00 USD"

    shop.fragment.set_ton_cost(per_star=D("0.000001"))  # and far below: the floor holds
    await teach_cost(shop, 701, "stars", 50)
    await repricer.reprice()
    assert await quoted_price(chat, 50) == "0.50 USD"

    assert await pricing_audit(shop) == [
        ("pricing", "0.05", str(expected)),
        ("pricing", str(expected), str(star_price_for(doubled.cost_ton / 50))),
        ("pricing", str(star_price_for(doubled.cost_ton / 50)), "0.10"),
        ("pricing", "0.10", "0.01"),
    ]
    settings = ShopSettings(shop.shop.pool, SHOP)
    last = await settings.last_reprice()
    assert last is not None and (last.before.star_price, last.after.star_price) == (D("0.10"), D("0.01"))
    assert f"1 TON = {TON_USD:.8f} USD" in last.reason
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_premium_prices_follow_their_own_cost_and_bounds(shop: ShopUnderTest) -> None:
    assert shop.fragment is not None and shop.shop.repricer is not None
    await funded_buyer(shop, 702, "200")
    shop.fragment.set_ton_cost(premium={3: D("3"), 12: D("40")})
    three = await teach_cost(shop, 702, "premium", 3)
    await teach_cost(shop, 702, "premium", 12)
    await shop.shop.repricer.reprice()
    prices = shop.shop.fulfilment.shopfront.prices
    assert three.cost_ton is not None
    cost_3 = three.cost_ton * TON_USD * D("1.2")
    assert prices.premium["3"] == max(cost_3.quantize(D("0.01"), rounding=ROUND_CEILING), AUTO.premium_floor["3"])
    assert prices.premium["12"] == AUTO.premium_ceiling["12"]  # 40 TON a year would sell for about 250 USD: capped
    assert prices.premium["6"] == SHOP.premium_prices["6"]  # never sold: its cost is unknown, its price stays
    assert shop.shop.fulfilment.shopfront.price("premium", 3) == prices.premium["3"]
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_instances_take_turns_so_each_change_is_made_and_audited_once(shop: ShopUnderTest) -> None:
    await funded_buyer(shop, 704, "100")
    first = await teach_cost(shop, 704, "stars", 50)
    pool = shop.shop.pool

    async def start_another_instance() -> None:
        lifecycle = Lifecycle()
        other = Repricer(pool, AUTO, ShopSettings(pool, SHOP), shop.shop.fulfilment.rates, lifecycle, currency="USD")
        async with anyio.create_task_group() as group:
            await group.start(other.run)
            lifecycle.request_stop("test over")

    # The shop's own service made its pass as it started: an instance starting now waits its turn.
    await start_another_instance()
    assert await pricing_audit(shop) == []
    # Half a refresh later (30 s / 2) the next instance to look makes the pass, and the change is audited once.
    await pool.execute(
        "UPDATE shop_settings SET updated_at = now() - interval '16 seconds' WHERE name = 'pricing_pass'"
    )
    await start_another_instance()
    await start_another_instance()
    assert await pricing_audit(shop) == [("pricing", "0.05", str(star_price_for(first.cost_ton / 50)))]
    stored = ShopSettings(pool, SHOP)
    await stored.refresh()
    assert stored.prices.star_price == star_price_for(first.cost_ton / 50)


def test_a_price_is_rounded_up_never_down_and_kept_within_the_bounds() -> None:
    current = PriceList(D("0.05"), {"3": D("14.99"), "6": D("19.99"), "12": D("35.99")})
    prices, kept = auto_prices(current, UnitCosts(D("0.004"), {"3": D("2.001")}), D("5"), AUTO)
    assert prices.star_price == D("0.024")  # 0.004 × 5 × 1.2 is exactly 0.024: not rounded further up
    assert prices.premium == {"3": D("12.01"), "6": D("19.99"), "12": D("35.99")}  # 12.006 rounds up to 12.01
    assert len(kept) == 2  # 6 and 12 months: no cost known, and the log says so
    cheap, _ = auto_prices(current, UnitCosts(D("0.0041"), {}), D("5"), AUTO)
    assert cheap.star_price == D("0.025")  # 0.0246 is rounded up to the step: never sold below the markup
    none, why = auto_prices(current, UnitCosts(D("0.004"), {"3": D("2")}), None, AUTO)
    assert none == current and why
