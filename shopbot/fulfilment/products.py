"""What the shop sells, at what price, and the checks before a user's money is held."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from shopbot.config.schema import ShopConfig
from shopbot.errors import Refused
from shopbot.fulfilment.fragment import BadRecipient, FragmentFailure, normalize_username
from shopbot.fulfilment.orders import DiscountGone, Order, Orders
from shopbot.fulfilment.promo import Discount, best_discount
from shopbot.fulfilment.recipients import LookupBusy, RecipientLookups
from shopbot.ledger import InsufficientFunds, Ledger

PRODUCTS = ("stars", "premium")
PREMIUM_MONTHS = (3, 6, 12)


# A quote from further in the future than clocks of instances may differ is not trusted.
CLOCK_SKEW_SECONDS = 60.0


def _now() -> float:
    return time.time()


class Quote(msgspec.Struct, frozen=True):
    """A priced order for a recipient Fragment has confirmed: what the confirmation screen shows. With a
    `discount`, `price` is what the user pays (its total) and `list_price` what it would have cost.
    `quoted_at` is the wall clock when it was made (the instance that reads it back may be another).
    It keeps, in JSON, what a buyer's session keeps: `stored()` and `from_stored()`."""

    product: str
    quantity: int
    recipient: str
    recipient_name: str
    price: Decimal
    currency: str
    discount: Discount | None = None
    quoted_at: float = msgspec.field(default_factory=_now)

    @property
    def list_price(self) -> Decimal:
        return self.price + self.discount.amount if self.discount is not None else self.price

    def expired(self, quote_seconds: float) -> bool:
        """Older than `quote_seconds`: it no longer holds its price. One from the future beyond a clock's
        skew is not trusted either."""
        age = time.time() - self.quoted_at
        return age > quote_seconds or age < -CLOCK_SKEW_SECONDS

    def short_by(self, shortfall: Decimal) -> Offer:
        """This quote beside a balance `shortfall` short of its price (a refused order says by how much)."""
        return Offer(self, self.price - shortfall)

    def stored(self) -> object:
        """The quote as JSON-ready builtins (amounts as strings: they stay exact)."""
        return msgspec.to_builtins(self)

    @classmethod
    def from_stored(cls, stored: object) -> Quote | None:
        """A quote `stored()` kept; None when it is not one (written by another version, say)."""
        try:
            return msgspec.convert(stored, cls)
        except msgspec.ValidationError:
            return None


@dataclass(frozen=True, slots=True)
class Offer:
    """A quote beside the buyer's available balance: the confirmation when the balance covers the price,
    the shortfall when it does not."""

    quote: Quote
    available: Decimal

    @property
    def covered(self) -> bool:
        return self.available >= self.quote.price

    @property
    def shortfall(self) -> Decimal:
        """What the buyer must top up to buy it (zero when covered)."""
        return max(self.quote.price - self.available, Decimal(0))

    @property
    def balance_after(self) -> Decimal:
        """The available balance once the price is held."""
        return self.available - self.quote.price


@dataclass(frozen=True, slots=True)
class PriceList:
    """What Stars and Premium cost now: `[shop] star_price` and `premium_prices`, unless an admin changed
    them at runtime (shop_settings, see shopbot/bot/admin/settings.py)."""

    star_price: Decimal
    premium: dict[str, Decimal]  # "3", "6", "12" months

    @classmethod
    def from_config(cls, config: ShopConfig) -> PriceList:
        return cls(config.star_price, dict(config.premium_prices))


class Shopfront:
    """Prices, limits, recipient lookup, and placing an order."""

    def __init__(self, config: ShopConfig, lookups: RecipientLookups | None, orders: Orders, ledger: Ledger) -> None:
        self.config = config
        self.lookups = lookups  # None: selling is off
        self.orders = orders
        self.ledger = ledger
        # Replaced as a whole when the runtime prices change; an order's price is fixed in its quote.
        self.prices = PriceList.from_config(config)

    def use_prices(self, prices: PriceList) -> None:
        self.prices = prices

    def price(self, product: str, quantity: int) -> Decimal:
        """The price in the shop currency; raises Refused for what the shop does not sell."""
        if product == "stars":
            if not self.config.min_stars <= quantity <= self.config.max_stars:
                raise Refused(
                    "bad_quantity", f"Stars come in {self.config.min_stars} to {self.config.max_stars} per order"
                )
            return (self.prices.star_price * quantity).quantize(Decimal("0.01"))
        if product == "premium":
            if quantity not in PREMIUM_MONTHS:
                raise Refused("bad_quantity", "Premium is sold for 3, 6 or 12 months")
            return self.prices.premium[str(quantity)]
        raise Refused("bad_product", f"the shop sells {' and '.join(PRODUCTS)}")

    def knows(self, username: str) -> bool:
        """Was this recipient found a moment ago, so that a quote for them needs no wait on Fragment?"""
        return self.lookups is not None and self.lookups.known(username) is not None

    async def quote(self, product: str, quantity: int, username: str, *, user_id: int | None = None) -> Quote:
        """Price the order and look the recipient up on Fragment before any money is touched. `user_id` is
        the buyer: one lookup each at a time."""
        price = self.price(product, quantity)
        if self.lookups is None:
            raise Refused("not_configured", "this shop is not selling yet")
        try:
            recipient = await self.lookups.user_info(normalize_username(username), user_id=user_id)
        except BadRecipient as exc:
            raise Refused("bad_username", str(exc)) from None
        except LookupBusy:
            raise Refused("busy", "Fragment is busy with other lookups; please try again in a moment") from None
        except FragmentFailure as exc:
            raise Refused("unavailable", "Fragment cannot be reached right now; please try again soon") from exc
        if recipient is None:
            raise Refused("recipient_not_found", f"Fragment knows no Telegram user @{normalize_username(username)}")
        # The buyer's best unspent promo discount comes off here; it is spent only when the order is placed.
        discount = await best_discount(self.orders.pool, user_id, price) if user_id is not None else None
        return Quote(
            product,
            quantity,
            recipient.username,
            recipient.name,
            discount.total if discount is not None else price,
            self.config.currency,
            discount,
        )

    async def offer(self, product: str, quantity: int, username: str, *, user_id: int) -> Offer:
        """The quote for the buyer `user_id` (see `quote`) beside their available balance."""
        quote = await self.quote(product, quantity, username, user_id=user_id)
        return Offer(quote, (await self.ledger.balance(user_id)).available)

    async def place(self, user_id: int, quote: Quote, confirmation: str | None = None) -> Order:
        """Hold the price and queue the order; the exact shortfall when the balance does not cover it.
        With a confirmation, a second call raises AlreadyPlaced instead of buying again. A quote whose
        discount was spent meanwhile is refused ("discount_gone"): it must be quoted again."""
        try:
            return await self.orders.place(
                user_id=user_id,
                product=quote.product,
                quantity=quote.quantity,
                recipient=quote.recipient,
                recipient_name=quote.recipient_name,
                price=quote.price,
                currency=quote.currency,
                confirmation=confirmation,
                discount=quote.discount,
            )
        except DiscountGone:
            raise Refused("discount_gone", "your promo discount was used by another order") from None
        except InsufficientFunds:
            available = (await self.ledger.balance(user_id)).available
            shortfall = quote.price - available
            raise Refused(
                "insufficient_funds",
                f"your balance is {available:.2f} {quote.currency}; top up {shortfall:.2f} {quote.currency} more",
                shortfall=shortfall,
            ) from None
