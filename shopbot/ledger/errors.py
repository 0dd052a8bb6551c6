"""Why a movement was refused."""

from __future__ import annotations

from decimal import Decimal

from shopbot.errors import ShopbotError


class LedgerError(ShopbotError):
    """A movement was refused; nothing moved."""


class InsufficientFunds(LedgerError):
    """The user's balance does not cover the amount (the database's CHECK said so)."""

    def __init__(self, user_id: int, amount: Decimal) -> None:
        self.user_id = user_id
        self.amount = amount
        super().__init__(f"user {user_id} cannot cover {amount}")


class IdempotencyConflict(LedgerError):
    """The key was used before for a different movement: a bug in the caller, never applied."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different movement")


class InvalidAmount(LedgerError):
    """Amounts are positive, finite Decimals with at most 8 decimal places."""
