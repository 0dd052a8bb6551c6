"""A price an admin types: "0.015" or "19,99", checked before the shop stores it."""

from __future__ import annotations

import re
from decimal import Decimal

from shopbot.fulfilment.products import PREMIUM_MONTHS

STAR_PRICE_PLACES = 6
PREMIUM_PRICE_PLACES = 2
MAX_PRICE = Decimal("100000")
_PRICE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,20})?")


class BadPrice(ValueError):
    """A typed price the shop cannot use; `key` names the text that says why."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def parse_price(text: str, places: int) -> Decimal:
    """ "0.015" or "19,99" as a positive Decimal with at most `places` decimals, below MAX_PRICE."""
    cleaned = text.strip().replace(",", ".")
    if not _PRICE.fullmatch(cleaned):
        raise BadPrice("admin-price-not-a-number")
    value = Decimal(cleaned)
    if value <= 0 or value >= MAX_PRICE:
        raise BadPrice("admin-price-out-of-range")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise BadPrice("admin-price-too-precise")
    return value


def premium_months() -> tuple[str, ...]:
    return tuple(str(months) for months in PREMIUM_MONTHS)
