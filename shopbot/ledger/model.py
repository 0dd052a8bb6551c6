"""The ledger's words: account kinds, movement types, and what a posting returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from shopbot.ledger.errors import InvalidAmount

MAX_PLACES = 8
MAX_AMOUNT = Decimal("1e15")


class MovementType(enum.StrEnum):
    RECHARGE = "recharge"
    PURCHASE = "purchase"
    REFUND = "refund"
    BONUS = "bonus"
    ADJUSTMENT = "adjustment"


class SystemAccount(enum.StrEnum):
    """The shop's own accounts: where a user's money comes from and goes to."""

    HELEKET_CLEARING = "heleket_clearing"
    FRAGMENT_COSTS = "fragment_costs"
    SHOP_REVENUE = "shop_revenue"
    ADJUSTMENTS = "adjustments"
    BONUSES = "bonuses"


USER = "user"
USER_HELD = "user_held"


@dataclass(frozen=True, slots=True)
class Balance:
    """A user's money: what they can spend, and what is reserved for orders in progress."""

    available: Decimal
    held: Decimal


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a movement. `applied` is False when its key had been used already; then the
    balances are None, as they are for a user account the movement did not touch."""

    movement_id: int
    applied: bool
    available: Decimal | None = None
    held: Decimal | None = None


def check_amount(amount: Decimal) -> Decimal:
    """Refuse floats, non-finite, non-positive, absurdly large and over-precise amounts."""
    if not isinstance(amount, Decimal):
        raise InvalidAmount(f"amounts are Decimal, not {type(amount).__name__}")
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise InvalidAmount(f"amount {amount} is not a positive amount")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise InvalidAmount(f"amount {amount} has more than {MAX_PLACES} decimal places")
    return amount
