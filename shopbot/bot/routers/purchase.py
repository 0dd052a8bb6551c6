"""Buying, shared by Stars and Premium: for whom, the recipient lookup, the confirmation, Confirm and Cancel.

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

import secrets
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import back_to_menu, button, main_menu
from shopbot.bot.limits import PAYMENT
from shopbot.bot.notices import what_was_bought
from shopbot.bot.screens import show
from shopbot.bot.storage import FailoverStorage
from shopbot.config.schema import Config
from shopbot.errors import Refused
from shopbot.fulfilment.fragment import BadRecipient, normalize_username
from shopbot.fulfilment.orders import AlreadyPlaced
from shopbot.fulfilment.products import Quote, Shopfront
from shopbot.fulfilment.promo import Discount
from shopbot.ledger import Ledger
from shopbot.locales import Markup, Translator
from shopbot.money import format_money

# A claim outlives every confirmation it could guard: a confirmation is honoured for at most
# `[pricing] quote_seconds` (an hour at most), and clocks of instances may differ a little.
CLAIM_SECONDS = 2 * 60 * 60
CLOCK_SKEW_SECONDS = 60.0
# FSM data keys, namespaced so other flows' data is left alone.
PENDING = "purchase"  # the quote on the confirmation screen, and its token
DRAFT = "purchase_draft"  # product and quantity while the buyer types a recipient
SPENT = "purchase_spent"  # the last token that was used, to tell a second press "already ordered"
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


class PurchaseFlow(StatesGroup):
    stars_count = State()  # typing an "other amount" of Stars
    stars_recipient = State()
    premium_recipient = State()


RECIPIENT_STATES = {"stars": PurchaseFlow.stars_recipient, "premium": PurchaseFlow.premium_recipient}


class ForWhom(CallbackData, prefix="buy-for"):
    product: str
    quantity: int
    who: str  # "me" or "other"


class Confirm(CallbackData, prefix="buy-ok"):
    product: str
    token: str


class Cancel(CallbackData, prefix="buy-no"):
    product: str
    token: str = "-"  # "-": a prompt, not a confirmation


# --- claiming a token -------------------------------------------------------------------------------------


class _ProcessClaims:
    """Spent tokens of this process, forgotten after CLAIM_SECONDS (in-memory FSM is one process only)."""

    def __init__(self) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()

    def claim(self, token: str) -> bool:
        now = time.monotonic()
        while self._until and next(iter(self._until.values())) < now:
            self._until.popitem(last=False)
        if token in self._until:
            return False
        self._until[token] = now + CLAIM_SECONDS
        return True


_process_claims = _ProcessClaims()


async def claim_once(storage: BaseStorage, token: str) -> bool:
    """True for exactly one caller per token, across every instance sharing the FSM storage."""
    if isinstance(storage, FailoverStorage):
        return await storage.claim(f"shopbot:purchase-claim:{token}", CLAIM_SECONDS)
    if isinstance(storage, RedisStorage):
        return bool(await storage.redis.set(f"shopbot:purchase-claim:{token}", 1, nx=True, ex=CLAIM_SECONDS))
    return _process_claims.claim(token)


# --- typed input ------------------------------------------------------------------------------------------


def split_arguments(args: str | None) -> tuple[str, str | None] | None:
    """`<quantity> [@username]` after a command; None when it is not that shape."""
    parts = (args or "").split()
    if not 1 <= len(parts) <= 2:
        return None
    return parts[0], parts[1] if len(parts) == 2 else None


def whole_number(text: str) -> int | None:
    """ "250" or "1 000" as an int; None for anything else (signs, decimals, words)."""
    digits = "".join(text.split())
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 9 else None


# --- screens ----------------------------------------------------------------------------------------------


def keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=list(rows))


def cancel_button(t: Translator, product: str, token: str = "-") -> InlineKeyboardButton:
    return button(t, "purchase-cancel", Cancel(product=product, token=token).pack())


def describe(t: Translator, product: str, quantity: int) -> Markup:
    """ "⭐ 50 Telegram Stars" or "🎁 Telegram Premium for 3 months", without the recipient."""
    return Markup(t("purchase-stars" if product == "stars" else "purchase-premium", count=quantity, months=quantity))


async def leave_flow(state: FSMContext) -> None:
    """Forget a half-typed purchase (a pending confirmation stays valid until replaced or used)."""
    if await state.get_state() in PurchaseFlow:
        await state.set_state(None)
    await state.update_data({DRAFT: None})


async def ask_for_whom(
    event: Message | CallbackQuery, t: Translator, shopfront: Shopfront, config: Config, product: str, quantity: int
) -> None:
    price = format_money(shopfront.price(product, quantity), config.shop.currency)
    text = t("purchase-for-whom", what=describe(t, product, quantity), price=price)
    await show(
        event,
        text,
        keyboard(
            [button(t, "purchase-for-me", ForWhom(product=product, quantity=quantity, who="me").pack())],
            [button(t, "purchase-for-other", ForWhom(product=product, quantity=quantity, who="other").pack())],
            [cancel_button(t, product)],
        ),
    )


async def ask_recipient(
    event: Message | CallbackQuery, t: Translator, state: FSMContext, product: str, quantity: int, text: str
) -> None:
    """Wait for the buyer to type a username."""
    await state.set_state(RECIPIENT_STATES[product])
    await state.update_data({DRAFT: {"product": product, "quantity": quantity}})
    await show(event, text, keyboard([cancel_button(t, product)]))


async def choose_recipient(
    event: Message | CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
    ledger: Ledger,
    product: str,
    quantity: int,
    typed: str | None,
    callback_answer: CallbackAnswer | None = None,
) -> None:
    """`typed` is what the buyer wrote as the recipient; None buys for the buyer themself."""
    if typed is None:
        own = event.from_user.username if event.from_user else None
        if not own:  # Fragment finds people by username only
            await ask_recipient(event, t, state, product, quantity, t("purchase-no-username"))
            return
        typed = own
    try:
        username = normalize_username(typed)
    except BadRecipient:
        await ask_recipient(event, t, state, product, quantity, t("purchase-bad-username", typed=typed[:64]))
        return
    await offer(event, t, state, shopfront, ledger, product, quantity, username, callback_answer)


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


async def offer(
    event: Message | CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
    ledger: Ledger,
    product: str,
    quantity: int,
    username: str,
    callback_answer: CallbackAnswer | None = None,
    note: str = "",
) -> None:
    """Look the recipient up on Fragment, then show the confirmation (or the shortfall, or why not);
    `note` goes above the confirmation (a re-quote says why the buyer sees it again)."""
    assert event.from_user is not None
    screen = await progress(event, t("purchase-looking-up", recipient=username), callback_answer)
    try:
        quote = await shopfront.quote(product, quantity, username, user_id=event.from_user.id)
    except Refused as refused:
        key = REFUSAL_TEXTS.get(refused.reason, "purchase-bad-quantity")
        text = t(key, recipient=username, typed=username)
        if refused.reason in ASK_AGAIN:
            await state.set_state(RECIPIENT_STATES[product])
            await state.update_data({DRAFT: {"product": product, "quantity": quantity}})
            await screen.edit_text(text, reply_markup=keyboard([cancel_button(t, product)]))
        else:
            await leave_flow(state)
            await screen.edit_text(text, reply_markup=back_to_menu(t))
        return
    await leave_flow(state)
    available = (await ledger.balance(event.from_user.id)).available
    heading = f"{note}\n\n" if note else ""
    if available < quote.price:
        await screen.edit_text(
            heading + shortfall_text(t, quote, available), reply_markup=shortfall_keyboard(t, product)
        )
        return
    token = secrets.token_urlsafe(16)
    await state.update_data(
        {
            PENDING: {
                "token": token,
                "at": time.time(),
                "product": quote.product,
                "quantity": quote.quantity,
                "recipient": quote.recipient,
                "recipient_name": quote.recipient_name,
                "price": str(quote.price),
                "currency": quote.currency,
                "discount": discount_data(quote.discount),
            }
        }
    )
    after = t("purchase-balance-after", balance=format_money(available - quote.price, quote.currency))
    await screen.edit_text(
        f"{heading}{summary(t, quote)}\n{after}\n\n{t('purchase-check')}",
        reply_markup=keyboard(
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


def discount_data(discount: Discount | None) -> dict[str, Any] | None:
    """A quote's discount as the FSM data keeps it (strings: amounts stay exact)."""
    if discount is None:
        return None
    return {
        "redemption_id": discount.redemption_id,
        "code": discount.code,
        "percent": str(discount.percent),
        "amount": str(discount.amount),
        "total": str(discount.total),
    }


def discount_from(data: dict[str, Any] | None) -> Discount | None:
    if not data:
        return None
    return Discount(
        int(data["redemption_id"]),
        str(data["code"]),
        Decimal(data["percent"]),
        Decimal(data["amount"]),
        Decimal(data["total"]),
    )


def shortfall_text(t: Translator, quote: Quote, available: Decimal) -> str:
    return (
        summary(t, quote)
        + "\n\n"
        + t(
            "purchase-shortfall",
            balance=format_money(available, quote.currency),
            shortfall=format_money(quote.price - available, quote.currency),
        )
    )


def shortfall_keyboard(t: Translator, product: str) -> InlineKeyboardMarkup:
    return keyboard([button(t, "menu-topup", Menu(action="topup").pack())], [cancel_button(t, product)])


# --- handlers ---------------------------------------------------------------------------------------------


async def on_for_whom_button(
    query: CallbackQuery,
    callback_data: ForWhom,
    state: FSMContext,
    t: Translator,
    shopfront: Shopfront,
    ledger: Ledger,
    callback_answer: CallbackAnswer,
) -> None:
    product, quantity = callback_data.product, callback_data.quantity
    if callback_data.who == "me":
        await choose_recipient(query, t, state, shopfront, ledger, product, quantity, None, callback_answer)
    else:
        await ask_recipient(query, t, state, product, quantity, t("purchase-ask-username"))


async def on_recipient_text(
    message: Message, state: FSMContext, t: Translator, shopfront: Shopfront, ledger: Ledger
) -> None:
    draft = (await state.get_data()).get(DRAFT)
    if not draft:  # the state outlived its data (cleared by another flow): start over
        await state.set_state(None)
        await message.answer(t("purchase-stale"), reply_markup=main_menu(t))
        return
    await choose_recipient(
        message, t, state, shopfront, ledger, draft["product"], draft["quantity"], (message.text or "").strip()
    )


async def on_confirm_button(
    query: CallbackQuery,
    callback_data: Confirm,
    state: FSMContext,
    t: Translator,
    config: Config,
    shopfront: Shopfront,
    ledger: Ledger,
    callback_answer: CallbackAnswer,
) -> None:
    data = await state.get_data()
    token = callback_data.token
    pending: dict[str, Any] | None = data.get(PENDING)
    if not pending or (pending["product"], pending["token"]) != (callback_data.product, token):
        # Spent, replaced, cleared, expired, made up, or another user's: nothing to buy.
        spent = data.get(SPENT) == token
        callback_answer.text = t("purchase-already-ordered" if spent else "purchase-stale")
        callback_answer.show_alert = True
        return
    if quote_expired(pending, config.pricing.quote_seconds):
        # Not honoured: the same order is quoted again at today's price and must be confirmed again.
        await state.update_data({PENDING: None})
        await offer(
            query,
            t,
            state,
            shopfront,
            ledger,
            pending["product"],
            pending["quantity"],
            pending["recipient"],
            callback_answer,
            note=t("purchase-requoted"),
        )
        return
    if not await claim_once(state.storage, token):  # a second press, racing the first
        callback_answer.text, callback_answer.show_alert = t("purchase-already-ordered"), True
        return
    # Claimed: this handler alone places the order. The quote leaves the FSM data first.
    await state.update_data({PENDING: None, SPENT: token})
    quote = Quote(
        pending["product"],
        pending["quantity"],
        pending["recipient"],
        pending["recipient_name"],
        Decimal(pending["price"]),
        pending["currency"],
        discount_from(pending.get("discount")),
    )
    try:
        # The token also goes to the database, which places one order per confirmation whatever happened
        # to the claim above (a lost Redis, a storage that is not shared between instances).
        order = await shopfront.place(query.from_user.id, quote, confirmation=token)
    except AlreadyPlaced:
        callback_answer.text, callback_answer.show_alert = t("purchase-already-ordered"), True
        return
    except Refused as refused:
        if refused.reason == "discount_gone":  # spent by another order meanwhile: quoted again without it
            await offer(
                query,
                t,
                state,
                shopfront,
                ledger,
                quote.product,
                quote.quantity,
                quote.recipient,
                callback_answer,
                note=t("promo-discount-gone", code=quote.discount.code if quote.discount else ""),
            )
            return
        if refused.reason == "insufficient_funds" and refused.shortfall is not None:
            await show(
                query, shortfall_text(t, quote, quote.price - refused.shortfall), shortfall_keyboard(t, quote.product)
            )
        else:
            await show(
                query,
                t(REFUSAL_TEXTS.get(refused.reason, "purchase-bad-quantity"), recipient=quote.recipient),
                back_to_menu(t),
            )
        return
    what = what_was_bought(t.texts, t.language, order)
    await show(query, t("purchase-queued", id=order.id, what=what), back_to_menu(t))


def quote_expired(pending: dict[str, Any], quote_seconds: float) -> bool:
    """A quote older than `quote_seconds` by the wall clock (the instance that made it may not be the one
    that is pressed) no longer holds its price. One from the future beyond a clock's skew is not trusted."""
    age = time.time() - float(pending["at"])
    return age > quote_seconds or age < -CLOCK_SKEW_SECONDS


async def on_cancel_button(
    query: CallbackQuery, callback_data: Cancel, state: FSMContext, t: Translator, callback_answer: CallbackAnswer
) -> None:
    pending = (await state.get_data()).get(PENDING)
    await leave_flow(state)
    if pending and pending["token"] == callback_data.token:
        await state.update_data({PENDING: None})
    callback_answer.text = t("purchase-cancelled")
    await show(query, t("menu-title"), main_menu(t))


def build_router(product: str) -> Router:
    """Fresh handlers for one product's flow (a router has one parent: each product router includes its own)."""
    router = Router(name=f"{__name__}.{product}")
    router.callback_query.register(on_for_whom_button, ForWhom.filter(F.product == product))
    router.callback_query.register(on_confirm_button, Confirm.filter(F.product == product), flags=PAYMENT)
    router.callback_query.register(on_cancel_button, Cancel.filter(F.product == product))
    # Commands are not usernames: they go on to their own routers.
    router.message.register(on_recipient_text, StateFilter(RECIPIENT_STATES[product]), F.text, ~F.text.startswith("/"))
    return router
