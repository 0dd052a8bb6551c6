"""Where a buyer is in a purchase: the flow's states, its buttons and texts, and the half-typed order (the draft)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.keyboards import button, main_menu
from shopbot.bot.routers.purchase import pending
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.fulfilment.products import Shopfront
from shopbot.locales import Markup, Translator
from shopbot.money import format_money

# FSM data key, namespaced so other flows' data is left alone.
DRAFT = "purchase_draft"  # product and quantity while the buyer types a recipient


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


def keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=list(rows))


def cancel_button(t: Translator, product: str, token: str = "-") -> InlineKeyboardButton:
    return button(t, "purchase-cancel", Cancel(product=product, token=token).pack())


def describe(t: Translator, product: str, quantity: int) -> Markup:
    """ "⭐ 50 Telegram Stars" or "🎁 Telegram Premium for 3 months", without the recipient."""
    return Markup(t("purchase-stars" if product == "stars" else "purchase-premium", count=quantity, months=quantity))


async def wait_for_recipient(state: FSMContext, product: str, quantity: int) -> None:
    """The buyer's next text is the recipient of `quantity` of `product`."""
    await state.set_state(RECIPIENT_STATES[product])
    await state.update_data({DRAFT: {"product": product, "quantity": quantity}})


async def draft_of(state: FSMContext) -> tuple[str, int] | None:
    """The product and quantity waiting for a recipient; None when the draft is gone (cleared by another flow)."""
    draft = (await state.get_data()).get(DRAFT)
    return (draft["product"], draft["quantity"]) if draft else None


async def leave_flow(state: FSMContext) -> None:
    """Forget a half-typed purchase (a pending confirmation stays valid until replaced or used)."""
    if await state.get_state() in PurchaseFlow:
        await state.set_state(None)
    await state.update_data({DRAFT: None})


def price_label(shopfront: Shopfront, config: Config, product: str, quantity: int) -> str:
    """ "1.00 USD": what `quantity` of `product` costs now, as every purchase screen shows it."""
    return format_money(shopfront.price(product, quantity), config.shop.currency)


async def on_cancel_button(
    query: CallbackQuery, callback_data: Cancel, state: FSMContext, t: Translator, callback_answer: CallbackAnswer
) -> None:
    """Back to the menu; a confirmation cancelled with its own button buys nothing any more."""
    kept = await pending.kept(state)
    await leave_flow(state)
    if kept.pending is not None and kept.pending.token == callback_data.token:
        await pending.drop(state)
    callback_answer.text = t("purchase-cancelled")
    await show(query, t("menu-title"), main_menu(t))
