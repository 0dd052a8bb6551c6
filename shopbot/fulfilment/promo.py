"""Promo codes: redeeming one exactly once, and the discount a redeemed code gives the next purchase.

Exactly once is the database's job, not a check in Python: one transaction takes a use of the code
(an UPDATE that re-checks `uses < max_uses`, enabled and expiry on the newest row under its lock),
inserts the user's nth redemption under UNIQUE (code, user, nth), and, for a credit, posts the ledger
bonus keyed by that redemption. Any refusal rolls all three back, so a refused or lost race uses nothing.

Why a refusal happened is read after the fact, only to answer the user; it decides nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import asyncpg

from shopbot.db.queries import queries
from shopbot.errors import ShopbotError
from shopbot.ledger import Ledger, MovementType, SystemAccount

CODE_PATTERN = re.compile(r"^[A-Z0-9]{3,32}$")
CENT = Decimal("0.01")
REASONS = ("bad_code", "unknown", "switched_off", "expired", "used_up", "already_used")


class PromoRefused(ShopbotError):
    """The code gives nothing; `reason` is one of REASONS, each with its own answer."""

    def __init__(self, reason: str, code: str) -> None:
        self.reason = reason
        self.code = code
        super().__init__(f"promo code {code!r}: {reason}")


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A use of a code: a credit already on the balance, or a discount waiting for the next purchase."""

    code: str
    kind: str
    amount: Decimal | None  # credit
    percent: Decimal | None  # discount
    cap: Decimal | None


@dataclass(frozen=True, slots=True)
class Discount:
    """A redeemed discount applied to one price: what comes off, and what is left to pay."""

    redemption_id: int
    code: str
    percent: Decimal
    amount: Decimal
    total: Decimal


def normalize_code(typed: str) -> str | None:
    """What the user typed as a code, in the one case codes are stored in; None if it cannot be a code."""
    code = "".join(typed.split()).upper()
    return code if code.isascii() and CODE_PATTERN.match(code) else None


async def redeem(pool: asyncpg.Pool, ledger: Ledger, user_id: int, typed: str) -> Redeemed:
    """Use the code once for the user, or raise PromoRefused (and change nothing)."""
    code = normalize_code(typed)
    if code is None:
        raise PromoRefused("bad_code", typed.strip()[:32])
    await ledger.open_accounts(user_id, SystemAccount.BONUSES)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await queries.promo.take_use(conn, code)
            if row is None:
                raise _Refused
            state = "credited" if row["kind"] == "credit" else "pending"
            try:
                redemption = await queries.promo.insert_redemption(conn, row["id"], user_id, state)
            except asyncpg.UniqueViolationError:  # a second press of the same user, racing the first
                raise _Refused from None
            if redemption is None:
                raise _Refused
            if row["kind"] == "credit":
                await ledger.credit(
                    user_id=user_id,
                    amount=row["amount"],
                    key=f"promo:{redemption}",
                    type=MovementType.BONUS,
                    reference=f"promo:{code}",
                    source=SystemAccount.BONUSES,
                    memo=f"promo code {code}",
                    conn=conn,
                )
    except _Refused:
        # The transaction rolled back, and the use it took with it; now only the answer is chosen.
        raise PromoRefused(await refusal_reason(pool, code, user_id), code) from None
    return Redeemed(code, row["kind"], row["amount"], row["percent"], row["cap"])


class _Refused(Exception):
    """Leaves the redeeming transaction, rolling it back."""


async def refusal_reason(pool: asyncpg.Pool, code: str, user_id: int) -> str:
    """The most useful of the refusals that apply now: the user's own use first, then the code's state."""
    status = await queries.promo.code_status(pool, code, user_id)
    if status is None:
        return "unknown"
    if status["mine"] >= status["per_user"]:
        return "already_used"
    if not status["enabled"]:
        return "switched_off"
    if status["expired"]:
        return "expired"
    return "used_up"


def apply_discount(redemption_id: int, code: str, percent: Decimal, cap: Decimal, price: Decimal) -> Discount:
    """`percent` off `price`, never more than `cap`, and never leaving less than 0.01 to pay."""
    off = min((price * percent / 100).quantize(CENT, rounding=ROUND_DOWN), cap, price - CENT)
    off = max(off, Decimal(0))
    return Discount(redemption_id, code, percent, off, price - off)


async def best_discount(db: asyncpg.Pool | asyncpg.Connection, user_id: int, price: Decimal) -> Discount | None:
    """The user's unspent discount that takes the most off this price; None when they have none."""
    found = [
        apply_discount(row["id"], row["code"], row["percent"], row["cap"], price)
        for row in await queries.promo.pending_discounts(db, user_id)
    ]
    found = [discount for discount in found if discount.amount > 0]
    return max(found, key=lambda d: (d.amount, -d.redemption_id)) if found else None
