"""The confirmation screen: the recipient looked up on Fragment, then what is bought, for whom and at what
price with Confirm and Cancel, or the shortfall with Top up, or why it cannot be bought."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, button
from shopbot.bot.routers.purchase import pending
from shopbot.bot.routers.purchase.flow import (
    Confirm,
    cancel_button,
    describe,
    keyboard,
    leave_flow,
    wait_for_recipient,
)
from shopbot.bot.screens import show
from shopbot.errors import Refused
from shopbot.fulfilment.products import Offer, Quote, Shopfront
from shopbot.locales import Translator
from shopbot.money import format_money

REFUSAL_TEXTS = {
    "recipient_not_found": "purchase-not-found",
    "bad_username": "purchase-bad-username",
    "unavailable": "purchase-unavailable",
    "busy": "purchase-busy",
    "not_configured": "purchase-not-configured",
    "bad_quantity": "purchase-bad-quantity",
    "bad_product": "purchase-bad-quantity",
}
ASK_AGAIN = ("recipient_not_found", "bad_username", "busy")  # the buyer may send a username (again)
Put = Callable[[str, InlineKeyboardMarkup], Awaitable[None]]  # shows the outcome: text and its buttons


def refusal_text(reason: str) -> str:
    """The text key that tells the buyer why an order cannot be quoted or placed."""
    return REFUSAL_TEXTS.get(reason, "purchase-bad-quantity")


async def progress(event: Message | CallbackQuery, text: str, callback_answer: CallbackAnswer | None) -> Message:
    """Show `text` at once (the lookup takes a while); the message it is in, to edit with the outcome."""
    if isinstance(event, Message):
        return await event.answer(text)
    if callback_answer is not None:
        callback_answer.disabled = True  # answered here, before the wait, not after it
    await event.answer(text)
    if isinstance(event.message, Message):
        edited = await event.message.edit_text(text)
        return edited if isinstance(edited, Message) else event.message
    assert event.bot is not None  # a button under a message too old to edit: answer in a new one
    return await event.bot.send_message(event.from_user.id, text)


async def open_screen(
    event: Message | CallbackQuery,
    t: Translator,
    shopfront: Shopfront,
    username: str,
    callback_answer: CallbackAnswer | None,
) -> Put:
    """Where the outcome goes: for a recipient found a moment ago, straight where a screen goes (the answer
    comes at once); else a "looking up" message first, edited with the outcome."""
    if shopfront.knows(username):
        return functools.partial(show, event)
    message = await progress(event, t("purchase-looking-up", recipient=username), callback_answer)

    async def edit(text: str, markup: InlineKeyboardMarkup) -> None:
        await message.edit_text(text, reply_markup=markup)

    return edit


async def show_confirmation(
    event: Message | CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
    product: str,
    quantity: int,
    username: str,
    callback_answer: CallbackAnswer | None = None,
    note: str = "",
) -> None:
    """Look the recipient up on Fragment, then show the confirmation (or the shortfall, or why not);
    `note` goes above the confirmation (a re-quote says why the buyer sees it again)."""
    assert event.from_user is not None
    put = await open_screen(event, t, shopfront, username, callback_answer)
    try:
        offer = await shopfront.offer(product, quantity, username, user_id=event.from_user.id)
    except Refused as refused:
        text = t(refusal_text(refused.reason), recipient=username, typed=username)
        if refused.reason in ASK_AGAIN:
            await wait_for_recipient(state, product, quantity)
            await put(text, keyboard([cancel_button(t, product)]))
        else:
            await leave_flow(state)
            await put(text, back_to_menu(t))
        return
    await leave_flow(state)
    heading = f"{note}\n\n" if note else ""
    if not offer.covered:
        await put(heading + shortfall_text(t, offer), shortfall_keyboard(t, product))
        return
    quote = offer.quote
    token = await pending.keep(state, quote)
    after = t("purchase-balance-after", balance=format_money(offer.balance_after, quote.currency))
    await put(
        f"{heading}{summary(t, quote)}\n{after}\n\n{t('purchase-check')}",
        keyboard(
            [button(t, "purchase-confirm", Confirm(product=product, token=token).pack())],
            [cancel_button(t, product, token)],
        ),
    )


def summary(t: Translator, quote: Quote) -> str:
    """What, for whom (the name as Fragment found it), and the price; with a promo discount, the price,
    the discount and the total the user pays."""
    text = t(
        "purchase-summary",
        what=describe(t, quote.product, quote.quantity),
        name=quote.recipient_name or quote.recipient,
        recipient=quote.recipient,
        price=format_money(quote.list_price, quote.currency),
    )
    if quote.discount is None:
        return text
    return "\n".join(
        (
            text,
            t(
                "promo-summary-discount",
                code=quote.discount.code,
                percent=f"{quote.discount.percent.normalize():f}",
                discount=format_money(quote.discount.amount, quote.currency),
            ),
            t("promo-summary-total", total=format_money(quote.price, quote.currency)),
        )
    )


def shortfall_text(t: Translator, offer: Offer) -> str:
    """The summary, then the balance and how much more it takes."""
    currency = offer.quote.currency
    return (
        summary(t, offer.quote)
        + "\n\n"
        + t(
            "purchase-shortfall",
            balance=format_money(offer.available, currency),
            shortfall=format_money(offer.shortfall, currency),
        )
    )


def shortfall_keyboard(t: Translator, product: str) -> InlineKeyboardMarkup:
    return keyboard([button(t, "menu-topup", Menu(action="topup").pack())], [cancel_button(t, product)])
