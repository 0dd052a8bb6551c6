"""Orders and money: the price is held when the order is placed, captured or released exactly once."""

from __future__ import annotations

import time
from decimal import Decimal

import anyio
import asyncpg
import msgspec
import pytest

from shopbot.config.schema import FragmentConfig, ShopConfig
from shopbot.errors import Refused
from shopbot.fulfilment.fragment import BadRecipient, Recipient, normalize_username
from shopbot.fulfilment.orders import AlreadyPlaced, Orders
from shopbot.fulfilment.products import Offer, Quote, Shopfront
from shopbot.fulfilment.promo import Discount
from shopbot.fulfilment.recipients import RecipientLookups
from shopbot.ledger import Ledger, MovementType, SystemAccount
from shopbot.ledger.verify import verify_ledger
from tests.ledger.helpers import make_user

D = Decimal


@pytest.fixture
def ledger(pool: asyncpg.Pool) -> Ledger:
    return Ledger(pool, "USD")


@pytest.fixture
def shopfront(pool: asyncpg.Pool, ledger: Ledger) -> Shopfront:
    return Shopfront(ShopConfig(star_price=D("0.02")), None, Orders(pool, ledger), ledger)


async def funded_user(pool: asyncpg.Pool, ledger: Ledger, user_id: int, amount: str) -> int:
    await make_user(pool, user_id)
    await ledger.credit(
        user_id=user_id,
        amount=D(amount),
        key=f"seed:{user_id}",
        type=MovementType.BONUS,
        reference="test",
        source=SystemAccount.BONUSES,
    )
    return user_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [("durov", "durov"), ("@durov", "durov"), ("https://t.me/durov", "durov"), ("  @Some_User_1 ", "Some_User_1")],
)
def test_usernames_the_library_accepts(text: str, expected: str) -> None:
    assert normalize_username(text) == expected


@pytest.mark.parametrize("text", ["abc", "@abcd", "t.me/durov", "du rov", "a" * 33, "", "@", "durov!"])
def test_usernames_the_library_would_refuse(text: str) -> None:
    with pytest.raises(BadRecipient, match="5 to 32 letters"):
        normalize_username(text)


async def test_prices_and_limits(shopfront: Shopfront) -> None:
    assert shopfront.price("stars", 50) == D("1.00")
    assert shopfront.price("stars", 1234) == D("24.68")
    assert shopfront.price("premium", 6) == D("19.99")
    for product, quantity in (("stars", 49), ("stars", 1_000_001), ("premium", 1), ("ton", 5)):
        with pytest.raises(Refused):
            shopfront.price(product, quantity)


async def test_placing_an_order_holds_its_price(shopfront: Shopfront, ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await funded_user(pool, ledger, 1, "10")
    order = await shopfront.place(user, Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD"))
    assert order.state == "queued"
    assert order.idempotency_key.startswith(f"shop-{order.id}-") and len(order.idempotency_key) > len(
        f"shop-{order.id}-"
    )
    balance = await ledger.balance(user)
    assert (balance.available, balance.held) == (D("8.00"), D("2.00"))


async def test_not_enough_balance_names_the_shortfall_and_leaves_no_order(
    shopfront: Shopfront, ledger: Ledger, pool: asyncpg.Pool
) -> None:
    user = await funded_user(pool, ledger, 2, "1.50")
    with pytest.raises(Refused) as refused:
        await shopfront.place(user, Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD"))
    assert refused.value.reason == "insufficient_funds" and refused.value.shortfall == D("0.50")
    assert "top up 0.50 USD more" in str(refused.value)
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0
    assert (await ledger.balance(user)).available == D("1.50")


async def test_complete_captures_once_and_refund_releases_once(
    shopfront: Shopfront, ledger: Ledger, pool: asyncpg.Pool
) -> None:
    orders = shopfront.orders
    user = await funded_user(pool, ledger, 3, "10")
    first = await shopfront.place(user, Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD"))
    second = await shopfront.place(user, Quote("premium", 3, "durov", "Pavel", D("5.00"), "USD"))
    assert await orders.complete(first, txid="tx", cost_ton=D("0.5"), cost=D("1.40")) is not None
    assert await orders.complete(first, txid="tx", cost_ton=D("0.5"), cost=D("1.40")) is None
    assert await orders.refund(first, "too late") is None  # completed orders are never refunded
    assert await orders.refund(second, "recipient not found") is not None
    assert await orders.refund(second, "again") is None
    balance = await ledger.balance(user)
    assert (balance.available, balance.held) == (D("8.00"), D("0"))
    revenue = await pool.fetchval(
        "SELECT sum(l.amount) FROM ledger l JOIN accounts a ON a.id = l.account_id WHERE a.kind = 'shop_revenue'"
    )
    assert revenue == D("0.60")
    assert (await verify_ledger(pool)).ok


async def test_one_confirmation_places_one_order_even_when_pressed_at_once(
    shopfront: Shopfront, ledger: Ledger, pool: asyncpg.Pool
) -> None:
    user = await funded_user(pool, ledger, 4, "10")
    quote = Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD")
    outcomes: list[str] = []

    async def press() -> None:
        try:
            await shopfront.place(user, quote, confirmation="token-1")
            outcomes.append("placed")
        except AlreadyPlaced:
            outcomes.append("already")

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(press)
    assert sorted(outcomes) == ["already"] * 4 + ["placed"]
    assert await pool.fetchval("SELECT count(*) FROM orders") == 1
    assert (await ledger.balance(user)).held == D("2.00")
    await shopfront.place(user, quote, confirmation="token-2")  # a new confirmation is a new order
    assert await pool.fetchval("SELECT count(*) FROM orders") == 2


class EveryoneIsThere(RecipientLookups):
    """Fragment as these tests need it: every username belongs to a user, named after it."""

    def __init__(self) -> None:
        super().__init__(FragmentConfig())

    async def user_info(self, username: str, *, user_id: int | None = None) -> Recipient | None:
        return Recipient(username, username.title())


async def test_an_offer_says_whether_the_balance_covers_the_quote_and_by_how_much_not(
    pool: asyncpg.Pool, ledger: Ledger
) -> None:
    shopfront = Shopfront(ShopConfig(star_price=D("0.02")), EveryoneIsThere(), Orders(pool, ledger), ledger)
    rich, poor = await funded_user(pool, ledger, 11, "10"), await funded_user(pool, ledger, 12, "0.50")
    covered = await shopfront.offer("stars", 100, "@durov", user_id=rich)
    assert (covered.quote.recipient, covered.quote.recipient_name, covered.quote.price) == ("durov", "Durov", D("2.00"))
    assert (covered.covered, covered.available, covered.balance_after, covered.shortfall) == (
        True,
        D("10"),
        D("8.00"),
        D("0"),
    )
    short = await shopfront.offer("stars", 100, "durov", user_id=poor)
    assert (short.covered, short.available, short.shortfall) == (False, D("0.50"), D("1.50"))
    assert [(await ledger.balance(user)).held for user in (rich, poor)] == [D("0"), D("0")]  # an offer holds nothing


async def test_a_refused_order_gives_the_offer_with_its_shortfall(
    shopfront: Shopfront, ledger: Ledger, pool: asyncpg.Pool
) -> None:
    user = await funded_user(pool, ledger, 13, "0.50")
    quote = Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD")
    with pytest.raises(Refused) as refused:
        await shopfront.place(user, quote)
    assert refused.value.reason == "insufficient_funds" and refused.value.shortfall is not None
    offer = quote.short_by(refused.value.shortfall)
    assert offer == Offer(quote, D("0.50")) and (offer.covered, offer.shortfall) == (False, D("1.50"))


def test_a_quote_is_stored_and_read_back_exactly() -> None:
    discount = Discount(7, "SAVE10", D("10"), D("0.20"), D("1.80"))
    quote = Quote("stars", 100, "durov", "Pavel", D("1.80"), "USD", discount)
    assert Quote.from_stored(msgspec.json.decode(msgspec.json.encode(quote.stored()))) == quote
    assert quote.list_price == D("2.00")
    assert Quote.from_stored(None) is None
    assert Quote.from_stored({"token": "t", "product": "stars"}) is None  # not a quote this version kept


def test_a_quote_holds_its_price_for_quote_seconds_only() -> None:
    now = time.time()
    assert not Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD", quoted_at=now - 59).expired(60)
    assert Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD", quoted_at=now - 61).expired(60)
    assert Quote("stars", 100, "durov", "Pavel", D("2.00"), "USD", quoted_at=now + 3600).expired(60)  # from the future
