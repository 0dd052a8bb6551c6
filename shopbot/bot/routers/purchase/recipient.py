"""The recipient step: for me or for someone else, the username typed for them, then the confirmation."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.keyboards import button, main_menu
from shopbot.bot.routers.purchase.confirmation import show_confirmation
from shopbot.bot.routers.purchase.flow import (
    ForWhom,
    cancel_button,
    describe,
    draft_of,
    keyboard,
    price_label,
    wait_for_recipient,
)
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.fragment import BadRecipient, normalize_username
from shopbot.fulfilment.products import Shopfront
from shopbot.locales import Translator


async def ask_for_whom(
    event: Message | CallbackQuery, t: Translator, shopfront: Shopfront, config: Config, product: str, quantity: int
) -> None:
    """What is chosen and its price, then: for me, or for someone else."""
    price = price_label(shopfront, config, product, quantity)
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
    await wait_for_recipient(state, product, quantity)
    await show(event, text, keyboard([cancel_button(t, product)]))


async def choose_recipient(
    event: Message | CallbackQuery,
    t: Translator,
    state: FSMContext,
    shopfront: Shopfront,
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
    await show_confirmation(event, t, state, shopfront, product, quantity, username, callback_answer)


async def on_for_whom_button(
    query: CallbackQuery,
    callback_data: ForWhom,
    state: FSMContext,
    t: Translator,
    shopfront: Shopfront,
    callback_answer: CallbackAnswer,
) -> None:
    product, quantity = callback_data.product, callback_data.quantity
    if callback_data.who == "me":
        await choose_recipient(query, t, state, shopfront, product, quantity, None, callback_answer)
    else:
        await ask_recipient(query, t, state, product, quantity, t("purchase-ask-username"))


async def on_recipient_text(message: Message, state: FSMContext, t: Translator, shopfront: Shopfront) -> None:
    draft = await draft_of(state)
    if draft is None:  # the state outlived its data (cleared by another flow): start over
        await state.set_state(None)
        await message.answer(t("purchase-stale"), reply_markup=main_menu(t))
        return
    product, quantity = draft
    await choose_recipient(message, t, state, shopfront, product, quantity, (message.text or "").strip())
