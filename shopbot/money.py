"""Money as people read it: every screen, notice and alert shows an amount the same way."""

from __future__ import annotations

from decimal import Decimal


def format_money(amount: Decimal, currency: str) -> str:
    """Two decimals for display; the ledger keeps full precision."""
    return f"{amount.quantize(Decimal('0.01'))} {currency}"
