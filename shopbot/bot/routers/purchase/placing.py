"""Confirm pressed: the order placed once, or the quote made again, or why it was not placed.

A press is honoured only when its token is the one in the presser's pending confirmation (a made-up
token, another user's, or one already spent finds nothing), and only by the one handler that claims
the token first (`pending.claim`). A quote older than `[pricing] quote_seconds` is not honoured: the
order is quoted again (recipient and price) and shown as a new confirmation with a new token; nothing
is held until that one is confirmed.
"""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.keyboards import back_to_menu
from shopbot.bot.notices import what_was_bought
from shopbot.bot.routers.purchase import pending
from shopbot.bot.routers.purchase.confirmation import (
    refusal_text,
    shortfall_keyboard,
    shortfall_text,
    show_confirmation,
)
from shopbot.bot.routers.purchase.flow import Confirm
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.errors import Refused
from shopbot.fulfilment.orders import AlreadyPlaced
from shopbot.fulfilment.products import Quote, Shopfront
from shopbot.locales import Translator


async def on_confirm_button(
    query: CallbackQuery,
    callback_data: Confirm,
    state: FSMContext,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    callback_answer: CallbackAnswer,
) -> None:
    token = callback_data.token
    kept = await pending.kept(state)
    confirmation = kept.pending
    if confirmation is None or not confirmation.answers(callback_data.product, token):
        # Spent, replaced, cleared, expired, made up, or another user's: nothing to buy.
        callback_answer.text = t("purchase-already-ordered" if kept.spent == token else "purchase-stale")
        callback_answer.show_alert = True
        return
    quote = confirmation.quote
    if quote.expired(config.pricing.quote_seconds):
        # Not honoured: the same order is quoted again at today's price and must be confirmed again.
        await pending.drop(state)
        await requote(query, t, state, shopfront, quote, callback_answer, t("purchase-requoted"))
        return
    if not await pending.claim(state, token):  # a second press, racing the first
        callback_answer.text, callback_answer.show_alert = t("purchase-already-ordered"), True
        return
    # Claimed: this handler alone places the order. The quote leaves the FSM data first.
    await pending.spend(state, token)
    try:
        # The token also goes to the database, which places one order per confirmation whatever happened
        # to the claim above (a lost Redis, a storage that is not shared between instances).
        order = await shopfront.place(query.from_user.id, quote, confirmation=token)
    except AlreadyPlaced:
        callback_answer.text, callback_answer.show_alert = t("purchase-already-ordered"), True
        return
    except Refused as refused:
        await not_placed(query, t, state, shopfront, quote, refused, callback_answer)
        return
    what = what_was_bought(t.texts, t.language, order)
    await show(query, t("purchase-queued", id=order.id, what=what), back_to_menu(t))


async def not_placed(
    query: CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
    quote: Quote,
    refused: Refused,
    callback_answer: CallbackAnswer,
) -> None:
    """Why the confirmed order was not placed: a spent discount quotes it again without, a short balance
    shows the shortfall, anything else its reason."""
    if refused.reason == "discount_gone":  # spent by another order meanwhile: quoted again without it
        note = t("promo-discount-gone", code=quote.discount.code if quote.discount else "")
        await requote(query, t, state, shopfront, quote, callback_answer, note)
    elif refused.reason == "insufficient_funds" and refused.shortfall is not None:
        offer = quote.short_by(refused.shortfall)
        await show(query, shortfall_text(t, offer), shortfall_keyboard(t, quote.product))
    else:
        await show(query, t(refusal_text(refused.reason), recipient=quote.recipient), back_to_menu(t))


async def requote(
    query: CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
    quote: Quote,
    callback_answer: CallbackAnswer,
    note: str,
) -> None:
    """The same order quoted again and shown as a new confirmation, `note` saying why."""
    await show_confirmation(
        query, t, state, shopfront, quote.product, quote.quantity, quote.recipient, callback_answer, note=note
    )
