"""Referrals: a user's link binds the new users who start the bot through it, and their top-ups earn the
inviter a bonus.

The link's payload is `r` and an opaque code of the user's (never their id). Binding is decided in the
database, in one statement: the user must be new (first seen moments ago, nothing done with money yet,
never bound), so existing users, self-invites, unknown codes and a second link change nothing. A bonus is
one ledger `bonus` movement keyed by the invoice (`referral:invoice:<id>`), posted by `Settlement.apply`
in the transaction that credits the top-up, so whatever credits a top-up once pays its bonus once.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import asyncpg
from aiogram.exceptions import TelegramAPIError

from shopbot.config.schema import ReferralConfig
from shopbot.db.queries import queries
from shopbot.ledger import Ledger, MovementType, SystemAccount

log = logging.getLogger(__name__)
PAYLOAD_PREFIX = "r"
CODE_LENGTH = 8
CODE_ALPHABET = string.ascii_letters + string.digits
PAYLOAD = re.compile(rf"^{PAYLOAD_PREFIX}([A-Za-z0-9]{{{CODE_LENGTH}}})$")
# A user counts as new for this long after the shop first saw them (a deep link's /start is their first
# message, recorded by the user middleware a moment before the handler runs).
NEW_USER_SECONDS = 600.0
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Bonus:
    """A referral bonus just paid: told to the inviter after the commit."""

    inviter_id: int
    invitee_id: int
    invoice_id: int
    amount: Decimal
    currency: str
    available: Decimal | None


BonusNotify = Callable[[Bonus], Awaitable[None]]


def code_from_payload(payload: str | None) -> str | None:
    """The referral code a /start payload carries; None for anything else (kept out of the database)."""
    match = PAYLOAD.match((payload or "").strip())
    return match.group(1) if match else None


def bonus_for(amount: Decimal, percent: Decimal) -> Decimal:
    """The inviter's share of a credited top-up, rounded down to the cent."""
    return (amount * percent / 100).quantize(CENT, ROUND_DOWN)


async def referral_code(pool: asyncpg.Pool, user_id: int) -> str:
    """The user's code, drawn the first time it is asked for and the same for ever after."""
    for _ in range(5):
        try:
            code = await queries.referrals.claim_referral_code(
                pool, user_id, "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            )
        except asyncpg.UniqueViolationError:
            continue  # another user holds that code: draw again
        if code is None:
            raise LookupError(f"user {user_id} is not recorded")
        return str(code)
    raise RuntimeError("could not draw an unused referral code")


async def bind_invitee(pool: asyncpg.Pool, config: ReferralConfig, user_id: int, payload: str | None) -> int | None:
    """Bind a new user to the owner of the link they came through; the inviter's id, or None (a no-op)."""
    code = code_from_payload(payload)
    if not config.enabled or code is None:
        return None
    row = await queries.referrals.bind_invitee(pool, user_id, code, NEW_USER_SECONDS)
    if row is None:
        return None
    log.info("user %s joined through the link of user %s", user_id, row["inviter_id"])
    return int(row["inviter_id"])


class Referrals:
    """Pays inviters their bonuses, under `[referral]`."""

    def __init__(self, ledger: Ledger, config: ReferralConfig, notify: BonusNotify | None = None) -> None:
        self.ledger = ledger
        self.config = config
        self.notify = notify

    async def pay(
        self, conn: asyncpg.Connection, *, invoice_id: int, invitee_id: int, amount: Decimal, currency: str
    ) -> Bonus | None:
        """Inside the transaction crediting the top-up: the inviter's bonus on it, if one is due."""
        if not self.config.enabled:
            return None
        row = await queries.referrals.inviter_earning(conn, invitee_id, self.config.months)
        bonus = bonus_for(amount, self.config.percent)
        if row is None or bonus <= 0:
            return None
        inviter = int(row["inviter_id"])
        posted = await self.ledger.credit(
            user_id=inviter,
            amount=bonus,
            key=f"referral:invoice:{invoice_id}",
            type=MovementType.BONUS,
            reference=f"referral:invoice:{invoice_id}",
            source=SystemAccount.BONUSES,
            memo=f"referral bonus: {self.config.percent}% of invoice {invoice_id} of user {invitee_id}",
            conn=conn,
        )
        if not posted.applied:
            return None
        await queries.referrals.record_referral_bonus(
            conn, invoice_id, inviter, invitee_id, posted.movement_id, bonus, currency
        )
        return Bonus(inviter, invitee_id, invoice_id, bonus, currency, posted.available)

    async def flag_refund(self, conn: asyncpg.Connection, invoice_id: int, status: str) -> None:
        """Heleket reports the top-up refunded: a bonus paid on it is flagged for the operator (not taken back)."""
        row = await queries.referrals.flag_referral_bonus(conn, invoice_id, f"Heleket reported {status}")
        if row is not None:
            log.warning(
                "invoice %s: %s; the referral bonus of %s %s paid to user %s is flagged",
                invoice_id,
                status,
                row["amount"],
                row["currency"],
                row["inviter_id"],
            )

    async def tell(self, bonus: Bonus) -> None:
        """After the commit: tell the inviter. A failed message never undoes the money."""
        if self.notify is None:
            return
        try:
            await self.notify(bonus)
        except TelegramAPIError as exc:
            log.warning("could not tell user %s about their referral bonus: %s", bonus.inviter_id, exc.message)
        except Exception:
            log.exception("could not tell user %s about their referral bonus", bonus.inviter_id)
