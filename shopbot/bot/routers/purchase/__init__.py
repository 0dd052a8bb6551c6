"""Buying, shared by Stars and Premium: the shelf of priced options, for whom, the recipient lookup, the
confirmation, Confirm and Cancel. One concept a module:

- `shelf`: what Stars and Premium share before the purchase (their screens, commands and option buttons);
- `flow`: where the buyer is (states, buttons, the half-typed order) and Cancel;
- `recipient`: for me or someone else, and the typed username;
- `confirmation`: the recipient looked up, then the confirmation, the shortfall, or why not;
- `pending`: the confirmation kept in the buyer's FSM data, its one-time token, and the claim on it;
- `placing`: Confirm pressed, the order placed once.

Confirm buys once. The confirmation's Confirm button carries a random one-time token that is kept,
with the quote, in the buyer's own FSM data. A press is honoured only when its token is the one in
the presser's FSM data (a made-up token, another user's, or one already spent finds nothing), and
only by the one handler that claims the token first. The claim is one atomic step in the storage
the FSM lives in, which every instance shares: Redis `SET NX`, or, with in-memory FSM (a single
process), a check-and-add with no await in between. The quote leaves the FSM data before the order
is placed, so a later press finds nothing to buy either.

A quote keeps its price for `[pricing] quote_seconds`. A Confirm pressed later is not honoured: the
quote is made again (recipient and price), shown as a new confirmation with a new token, and nothing
is held until that one is confirmed. The old token is dropped, not spent, so it buys nothing.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter

from shopbot.bot.limits import PAYMENT
from shopbot.bot.routers.purchase.flow import (
    RECIPIENT_STATES,
    Cancel,
    Confirm,
    ForWhom,
    PurchaseFlow,
    cancel_button,
    leave_flow,
    on_cancel_button,
)
from shopbot.bot.routers.purchase.placing import on_confirm_button
from shopbot.bot.routers.purchase.recipient import ask_for_whom, choose_recipient, on_for_whom_button, on_recipient_text

__all__ = [
    "Cancel",
    "Confirm",
    "ForWhom",
    "PurchaseFlow",
    "ask_for_whom",
    "build_router",
    "cancel_button",
    "choose_recipient",
    "leave_flow",
]


def build_router(product: str) -> Router:
    """Fresh handlers for one product's flow (a router has one parent: each product router includes its own)."""
    router = Router(name=f"{__name__}.{product}")
    router.callback_query.register(on_for_whom_button, ForWhom.filter(F.product == product))
    router.callback_query.register(on_confirm_button, Confirm.filter(F.product == product), flags=PAYMENT)
    router.callback_query.register(on_cancel_button, Cancel.filter(F.product == product))
    # Commands are not usernames: they go on to their own routers.
    router.message.register(on_recipient_text, StateFilter(RECIPIENT_STATES[product]), F.text, ~F.text.startswith("/"))
    return router
