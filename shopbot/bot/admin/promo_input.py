"""The one message an admin types to create a promo code, read into a NewCode or refused with a reason.

    NAME credit AMOUNT USES [PER_USER] [YYYY-MM-DD]
    NAME discount PERCENT CAP USES [PER_USER] [YYYY-MM-DD]

and the one that changes a code's limits (what a code gives never changes: users were told it):

    USES [PER_USER] [YYYY-MM-DD]

The date is the last day the code works (through 23:59 UTC); without one, the code does not expire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from shopbot.errors import ShopbotError
from shopbot.fulfilment.promo import normalize_code

MAX_AMOUNT = Decimal("100000")
MAX_USES = 1_000_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadCode(ShopbotError):
    """`key` names the text that tells the admin what to fix."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


@dataclass(frozen=True, slots=True)
class NewCode:
    code: str
    kind: str
    amount: Decimal | None
    percent: Decimal | None
    cap: Decimal | None
    max_uses: int
    per_user: int
    expires_at: datetime | None


def money(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise BadCode("admin-promo-bad-amount") from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not 0 < value <= MAX_AMOUNT or not isinstance(exponent, int) or exponent < -2:
        raise BadCode("admin-promo-bad-amount")
    return value


def percent(text: str) -> Decimal:
    try:
        value = Decimal(text.removesuffix("%").replace(",", "."))
    except InvalidOperation:
        raise BadCode("admin-promo-bad-percent") from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or not 0 < value < 100 or not isinstance(exponent, int) or exponent < -2:
        raise BadCode("admin-promo-bad-percent")
    return value


def count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_USES:
        raise BadCode("admin-promo-bad-uses")
    return int(text)


def last_day(text: str, today: date) -> datetime:
    try:
        day = date.fromisoformat(text) if _DATE.match(text) else None
    except ValueError:
        day = None
    if day is None or day < today:
        raise BadCode("admin-promo-bad-date")
    return datetime.combine(day + timedelta(days=1), time(), UTC)


@dataclass(frozen=True, slots=True)
class Limits:
    max_uses: int
    per_user: int
    expires_at: datetime | None


def parse_limits(parts: list[str], today: date) -> Limits:
    """USES [PER_USER] [YYYY-MM-DD], as words."""
    rest = list(parts)
    if not 1 <= len(rest) <= 3:
        raise BadCode("admin-promo-bad-format")
    looks_like_date = "-" in rest[-1] and not rest[-1].startswith("-")
    expires_at = last_day(rest.pop(), today) if len(rest) > 1 and looks_like_date else None
    if len(rest) > 2:
        raise BadCode("admin-promo-bad-format")
    max_uses = count(rest[0])
    per_user = count(rest[1]) if len(rest) == 2 else 1
    if per_user > max_uses:
        raise BadCode("admin-promo-bad-uses")
    return Limits(max_uses, per_user, expires_at)


def parse_new_code(text: str, today: date) -> NewCode:
    """The admin's message as a code to create; BadCode, naming what is wrong, otherwise."""
    parts = text.split()
    if len(parts) < 2 or parts[1].lower() not in ("credit", "discount"):
        raise BadCode("admin-promo-bad-format")
    code = normalize_code(parts[0])
    if code is None:
        raise BadCode("admin-promo-bad-name")
    kind = parts[1].lower()
    before_uses = 3 if kind == "credit" else 4  # NAME credit AMOUNT | NAME discount PERCENT CAP
    limits = parse_limits(parts[before_uses:], today)
    if kind == "credit":
        return NewCode(code, kind, money(parts[2]), None, None, limits.max_uses, limits.per_user, limits.expires_at)
    return NewCode(
        code, kind, None, percent(parts[2]), money(parts[3]), limits.max_uses, limits.per_user, limits.expires_at
    )
