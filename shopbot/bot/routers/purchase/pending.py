"""The confirmation a buyer was shown, kept in their own FSM data: its one-time token and its quote.

Only this module knows how that data looks; the quote stores and reads itself back (`Quote.stored`).
A token is honoured once: `claim` is one atomic step in the storage the FSM lives in, which every
instance shares (see `shopbot.bot.storage.claim_once`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiogram.fsm.context import FSMContext

from shopbot.bot.storage import claim_once
from shopbot.fulfilment.products import Quote

# A claim outlives every confirmation it could guard: a confirmation is honoured for at most
# `[pricing] quote_seconds` (an hour at most), and clocks of instances may differ a little.
CLAIM_SECONDS = 2 * 60 * 60
# FSM data keys, namespaced so other flows' data is left alone.
PENDING = "purchase"  # the quote on the confirmation screen, and its token
SPENT = "purchase_spent"  # the last token that was used, to tell a second press "already ordered"


@dataclass(frozen=True, slots=True)
class Pending:
    """The confirmation on the buyer's screen: the quote its Confirm button buys, and that button's token."""

    token: str
    quote: Quote

    def answers(self, product: str, token: str) -> bool:
        """Is a press of Confirm for `product` with `token` a press of this confirmation?"""
        return (self.quote.product, self.token) == (product, token)


@dataclass(frozen=True, slots=True)
class Kept:
    """What the buyer's FSM data holds of their purchase: the pending confirmation, the last token spent."""

    pending: Pending | None
    spent: str | None


async def keep(state: FSMContext, quote: Quote) -> str:
    """Make `quote` the buyer's pending confirmation (replacing any other); the new token for its Confirm."""
    token = secrets.token_urlsafe(16)
    await state.update_data({PENDING: {"token": token, "quote": quote.stored()}})
    return token


async def kept(state: FSMContext) -> Kept:
    data = await state.get_data()
    return Kept(_pending(data.get(PENDING)), data.get(SPENT))


def _pending(stored: dict[str, Any] | None) -> Pending | None:
    """The pending confirmation from FSM data; None when there is none, or it is not one this version kept."""
    if not stored:
        return None
    quote = Quote.from_stored(stored.get("quote"))
    return Pending(stored["token"], quote) if quote is not None else None


async def drop(state: FSMContext) -> None:
    """No confirmation is pending any more: its token buys nothing (it is not spent, so not "already ordered")."""
    await state.update_data({PENDING: None})


async def claim(state: FSMContext, token: str) -> bool:
    """True for exactly one press of `token`, across every instance sharing the FSM storage."""
    return await claim_once(state.storage, f"shopbot:purchase-claim:{token}", CLAIM_SECONDS)


async def spend(state: FSMContext, token: str) -> None:
    """The confirmation leaves the FSM data before its order is placed, so a later press finds nothing to buy."""
    await state.update_data({PENDING: None, SPENT: token})
