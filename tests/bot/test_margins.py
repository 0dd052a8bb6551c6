"""What an operator sees of margins, through the real bot, the Telegram, Heleket and Fragment emulators and a
real database: the Prices screen's cost, margin, mode and last reprice per product, the dashboard's margin
per period and the chart's cost, and the `shopbot_price_margin_percent` gauge in /metrics."""

from __future__ import annotations

import math
import time
from decimal import ROUND_HALF_UP, Decimal

import anyio

from shopbot.bot.admin.callbacks import AdminMenu, Dashboard, PriceAction
from shopbot.db.queries import queries
from shopbot.fulfilment.costs import margin_percent
from shopbot.fulfilment.products import PriceList
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.heleket_invoices import rate
from shopbot.sandbox.telegram_wire import Message
from tests.bot.test_admin import ADMIN, admin_shop, buy, open_admin, reply
from tests.bot.test_bot_purchase import Chat, plain
from tests.fulfilment.helpers import fund_wallet, funded_buyer, wait_final
from tests.ops.test_metrics import samples, value
from tests.shop_harness import ShopUnderTest

D = Decimal
TON_USD = rate("TON", "USD")  # the Heleket emulator's TON rate, as its exchange-rate list gives it
BUYER = 811


def cost_text(amount: Decimal, places: str) -> str:
    return f"{amount.quantize(D(places), rounding=ROUND_HALF_UP)} USD"


async def sell_cheaply(shop: ShopUnderTest) -> tuple[Decimal, Decimal]:
    """A star and 3 months of Premium sold at a cost below their price; TON per star and per 3-month package."""
    assert shop.fragment is not None
    fund_wallet(shop)
    shop.fragment.set_ton_cost(per_star=D("0.003"), premium={3: D("2")})
    await funded_buyer(shop, BUYER)
    stars = await wait_final(shop, await buy(shop, BUYER, "stars", 50))
    premium = await wait_final(shop, await buy(shop, BUYER, "premium", 3))
    assert (stars.state, premium.state) == ("completed", "completed")
    assert stars.cost_ton is not None and premium.cost_ton is not None
    return stars.cost_ton / 50, premium.cost_ton


async def newer(chat: Chat, needle: str, after: int) -> Message:
    """The bot's message (new or edited) after message `after` that shows `needle`."""
    with anyio.fail_after(10):
        while True:
            for message in reversed(chat.shop.telegram.chat_messages(chat.user_id)):
                if message.message_id > after and message.text and needle in message.text:
                    return message
            await anyio.sleep(0.02)


async def open_prices(admin: Chat) -> str:
    """/admin, then Prices: the text of the screen it opens."""
    last = max((m.message_id for m in admin.shop.telegram.chat_messages(admin.user_id, include_user=True)), default=0)
    admin.say("/admin")
    menu = await newer(admin, plain(admin.t("admin-title")), last)
    admin.press(menu, AdminMenu(action="prices").pack())
    return str((await newer(admin, plain(admin.t("admin-prices-title")), last)).text)


async def test_the_prices_screen_shows_each_products_price_cost_margin_the_mode_and_the_last_reprice(
    database_url: str,
) -> None:
    async with admin_shop(database_url) as shop:
        star_ton, premium_ton = await sell_cheaply(shop)
        admin = await open_admin(shop)
        t = admin.t
        text = await open_prices(admin)
        star_cost, premium_cost = star_ton * TON_USD, premium_ton * TON_USD
        rate_line = plain(t("admin-prices-rate", rate=f"{TON_USD.normalize():f} USD", when="")).split("(")[0]
        for line in (
            t("admin-prices-mode-fixed"),
            rate_line,
            t("admin-prices-last-none"),
            t("admin-prices-star", price="0.02 USD", configured="0.02 USD"),
            t(
                "admin-prices-cost",
                cost=cost_text(star_cost, "0.0001"),
                margin=f"{margin_percent(D('0.02'), star_cost)} %",
            ),
            t("admin-prices-premium", months=3, price="14.99 USD", configured="14.99 USD"),
            t(
                "admin-prices-cost",
                cost=cost_text(premium_cost, "0.01"),
                margin=f"{margin_percent(D('14.99'), premium_cost)} %",
            ),
        ):
            assert plain(line) in text, f"{plain(line)!r} not in {text!r}"
        # Nobody bought 6 or 12 months yet: their cost is unknown, not made up.
        assert text.count(plain(t("admin-prices-cost-unknown"))) == 2
        assert margin_percent(D("0.02"), star_cost) > 0

        # An admin sets a star price below cost: the margin goes negative and is flagged; the change is named.
        screen = await admin.showing(plain(t("admin-prices-title")))
        admin.press(screen, PriceAction(item="star").pack())
        await admin.screen("admin-price-ask", item=t("admin-price-star"), price="0.02 USD", places=6)
        text = str((await reply(admin, "0.001", "admin-saved")).text)
        low = margin_percent(D("0.001"), star_cost)
        assert low < 0
        assert (
            plain(t("admin-prices-cost-low", cost=cost_text(star_cost, "0.0001"), margin=f"{low} %", minimum="0.0 %"))
            in text
        )
        assert t("admin-prices-by-admin", id=str(ADMIN)) in text
        assert plain(t("admin-prices-last-none")) not in text

        # The repricer's change, as it writes it, is named as automatic pricing.
        await queries.pricing.record_reprice(
            shop.shop.pool, '{"star_price": "0.001"}', '{"star_price": "0.03"}', "test"
        )
        text = await open_prices(admin)
        assert t("admin-prices-by-pricing") in text and t("admin-prices-by-admin", id=str(ADMIN)) not in text
        await admin.assert_every_press_answered()
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_the_prices_screen_says_the_cost_is_unknown_without_a_ton_rate(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        assert shop.heleket is not None
        shop.heleket.set_usd_price("TON", None)  # Heleket's lists have no TON: the shop knows no rate
        admin = await open_admin(shop)
        text = await open_prices(admin)
        assert plain(admin.t("admin-prices-rate-unknown")) in text
        assert text.count(plain(admin.t("admin-prices-cost-unknown"))) == 4
        scrape = samples(await shop.scrape())
        assert math.isnan(value(scrape, "shopbot_price_margin_percent", product="stars"))


async def test_the_dashboard_shows_the_periods_margin_and_the_chart_its_cost(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        star_ton, premium_ton = await sell_cheaply(shop)
        cost = sum(((ton * TON_USD).quantize(D("0.01")) for ton in (star_ton * 50, premium_ton)), D(0))
        sales = D("1.00") + D("14.99")
        admin = await open_admin(shop)
        t = admin.t
        menu = await admin.screen("admin-title")
        admin.press(menu, AdminMenu(action="dash").pack())
        revenue_line = plain(
            t("admin-dash-revenue", sales=f"{sales} USD", cost=f"{cost:.2f} USD", revenue=f"{sales - cost:.2f} USD")
        )
        text = str((await admin.showing(revenue_line)).text)
        assert plain(t("admin-dash-margin", margin=f"{margin_percent(sales, cost)} %")) in text
        assert plain(t("admin-dash-uncosted", count=1)) not in text  # every sale was booked with its cost

        dashboard = await admin.showing(revenue_line)
        admin.press(dashboard, Dashboard(period="chart").pack())
        await shop.telegram.wait_for_call("sendPhoto", timeout=20, predicate=lambda c: c.params["chat_id"] == ADMIN)
        [message] = [m for m in shop.telegram.chat_messages(ADMIN) if m.photo]
        assert plain(t("admin-chart-caption", count=30, amount=f"{sales} USD", cost=f"{cost:.2f} USD")) == plain(
            str(message.caption)
        )
        await admin.assert_every_press_answered()


async def test_the_margin_gauge_shows_each_products_margin_and_scrapes_ask_heleket_nothing(database_url: str) -> None:
    async with admin_shop(database_url) as shop:
        assert shop.heleket is not None
        star_ton, premium_ton = await sell_cheaply(shop)
        scrape = samples(await shop.scrape())
        star = margin_percent(D("0.02"), star_ton * TON_USD)
        assert value(scrape, "shopbot_price_margin_percent", product="stars") == float(star)
        assert value(scrape, "shopbot_price_margin_percent", product="premium_3") == float(
            margin_percent(D("14.99"), premium_ton * TON_USD)
        )
        for unknown in ("premium_6", "premium_12"):  # never sold: no cost known, no number made up
            assert math.isnan(value(scrape, "shopbot_price_margin_percent", product=unknown))

        # A price change shows at the next scrape. Scrapes never ask Heleket, even once the shop's cached rate
        # is due for a refresh (its clock moved past the 5-minute cache, still within max_rate_age).
        rates = shop.shop.fulfilment.rates
        rates.clock = lambda: time.time() + 400
        asked = [c for c in shop.heleket.calls if "exchange-rate" in c.path]
        shopfront = shop.shop.fulfilment.shopfront
        shopfront.use_prices(PriceList(D("0.01"), dict(shopfront.prices.premium)))
        for _ in range(3):
            scrape = samples(await shop.scrape())
            assert value(scrape, "shopbot_price_margin_percent", product="stars") == float(
                margin_percent(D("0.01"), star_ton * TON_USD)
            )
            await anyio.sleep(0.05)
        assert [c for c in shop.heleket.calls if "exchange-rate" in c.path] == asked
