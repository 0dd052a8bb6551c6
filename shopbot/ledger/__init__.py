"""The ledger: the one door through which money moves. Nothing else changes a balance."""

from shopbot.ledger.book import Ledger
from shopbot.ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidAmount, LedgerError
from shopbot.ledger.model import Balance, MovementType, Posted, SystemAccount

__all__ = [
    "Balance",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "Ledger",
    "LedgerError",
    "MovementType",
    "Posted",
    "SystemAccount",
]
