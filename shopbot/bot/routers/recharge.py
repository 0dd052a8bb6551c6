"""/recharge and the Top up button: an amount (a preset, a typed one, or `/recharge 15`), then a Heleket
invoice with a Pay link and a "Check payment" button that asks Heleket once (at most once per 30 s per
invoice). A user with `[shop] max_open_invoices` unpaid invoices gets their Pay links instead of a new one.

The credit itself is announced by the shop when the webhook (or a check) applies it
(shopbot/bot/notices.py); this flow only creates invoices and reports their status.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.callbacks import Menu
from shopbot.bot.keyboards import button, main_menu
from shopbot.bot.limits import PAYMENT
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.errors import Refused
from shopbot.locales import Translator
from shopbot.money import format_money
from shopbot.payments.topup import TooManyOpenInvoices, TopUpInvoice, TopUps

CENT = Decimal("0.01")
MAX_INVOICE_ID = 2**63 - 1
# Digits with an optional decimal point or comma ("12,50" is how many Russian speakers write it).
_AMOUNT = re.compile(r"\d{1,12}(?:[.,]\d{1,12})?")


class TopUpAmount(CallbackData, prefix="acc_ta"):
    """A preset amount; a string, so a forged value is refused by our own check, not by a parse error."""

    amount: str


class TopUpOther(CallbackData, prefix="acc_to"):
    """Enter an amount of one's own."""


class TopUpLeave(CallbackData, prefix="acc_tx"):
    """Leave the amount prompt for the main menu."""


class TopUpCheck(CallbackData, prefix="acc_tc"):
    invoice: int


class TopUpEntry(StatesGroup):
    amount = State()


# Heleket's statuses (and our own 'creating', 'create_failed', 'expired') in words, and whether the
# invoice is over: a finished invoice's message loses its Pay and Check buttons.
STATUS_WORDS: dict[str, tuple[str, bool]] = {
    "creating": ("topup-status-waiting", False),
    "check": ("topup-status-waiting", False),
    "process": ("topup-status-confirming", False),
    "confirm_check": ("topup-status-confirming", False),
    "wrong_amount_waiting": ("topup-status-partly-paid", False),
    "paid": ("topup-status-paid", True),
    "paid_over": ("topup-status-paid", True),
    "wrong_amount": ("topup-status-underpaid", True),
    "cancel": ("topup-status-expired", True),
    "expired": ("topup-status-expired", True),
    "fail": ("topup-status-failed", True),
    "system_fail": ("topup-status-failed", True),
    "create_failed": ("topup-status-failed", True),
    "refund_process": ("topup-status-refunded", True),
    "refund_fail": ("topup-status-refunded", True),
    "refund_paid": ("topup-status-refunded", True),
    "locked": ("topup-status-locked", False),
}


def parse_amount(text: str, currency: str) -> Decimal | str:
    """The amount a user typed, or the key of the text that says what is wrong with it."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    for suffix in (currency.lower(), "$"):
        cleaned = cleaned.removesuffix(suffix).removesuffix(suffix.upper())
    if not _AMOUNT.fullmatch(cleaned):
        return "recharge-not-a-number"
    amount = Decimal(cleaned.replace(",", "."))
    exponent = amount.normalize().as_tuple().exponent  # "12.500" is 12.50: trailing zeros are no cents
    if isinstance(exponent, int) and exponent < -2:
        return "recharge-too-precise"
    return amount.quantize(CENT)


def amount_label(amount: Decimal, currency: str) -> str:
    """ "10 USD" for a whole amount, "12.50 USD" otherwise."""
    return f"{amount:.0f} {currency}" if amount == amount.to_integral_value() else format_money(amount, currency)


def leave_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(t, "menu-home", TopUpLeave().pack())]])


async def limits_text(t: Translator, topups: TopUps, currency: str) -> str:
    limits = await topups.limits()
    return "\n".join(
        (
            t("recharge-minimum", amount=format_money(limits.minimum, currency)),
            t("recharge-maximum", amount=format_money(limits.maximum, currency)),
        )
    )


async def choice_screen(t: Translator, topups: TopUps, config: Config) -> tuple[str, InlineKeyboardMarkup]:
    currency = config.shop.currency
    presets = [
        InlineKeyboardButton(
            text=amount_label(p, currency), callback_data=TopUpAmount(amount=format(p.normalize(), "f")).pack()
        )
        for p in config.shop.topup_presets
    ]
    rows = [presets[i : i + 2] for i in range(0, len(presets), 2)]
    rows.append([button(t, "recharge-other", TopUpOther().pack())])
    rows.append([button(t, "menu-home", Menu(action="home").pack())])
    text = f"{t('recharge-choose')}\n\n{await limits_text(t, topups, currency)}"
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def expiry_text(t: Translator, expires_at: datetime | None) -> str:
    if expires_at is None:
        return ""
    minutes = round((expires_at - datetime.now(UTC)).total_seconds() / 60)
    if minutes < 1:
        return ""
    until = expires_at.astimezone(UTC).strftime("%H:%M")
    if minutes > 120:
        return t("recharge-expires-hours", count=round(minutes / 60), what=until)
    return t("recharge-expires-minutes", count=minutes, what=until)


def invoice_screen(t: Translator, invoice: TopUpInvoice) -> tuple[str, InlineKeyboardMarkup]:
    text = t("recharge-invoice", id=invoice.id, amount=format_money(invoice.amount, invoice.currency))
    expiry = expiry_text(t, invoice.expires_at)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t("recharge-pay"), url=invoice.url)],
            [button(t, "recharge-check", TopUpCheck(invoice=invoice.id).pack())],
            [button(t, "menu-home", Menu(action="home").pack())],
        ]
    )
    return (f"{text}\n\n{expiry}" if expiry else text), markup


async def refusal_text(t: Translator, topups: TopUps, config: Config, refused: Refused) -> str:
    if refused.reason in ("too_small", "too_large"):
        limits = await topups.limits()
        limit = limits.minimum if refused.reason == "too_small" else limits.maximum
        return t(f"recharge-{refused.reason.replace('_', '-')}", amount=format_money(limit, config.shop.currency))
    if refused.reason == "not_configured":
        return t("recharge-not-configured")
    if isinstance(refused, TooManyOpenInvoices):
        text = t("recharge-too-many-open", count=len(refused.open))
        first = refused.first_expiry
        return text + (
            "\n" + t("recharge-first-expiry", what=first.astimezone(UTC).strftime("%H:%M")) if first is not None else ""
        )
    return t("recharge-unavailable")


def open_invoices_keyboard(t: Translator, refused: TooManyOpenInvoices) -> InlineKeyboardMarkup:
    """A Pay link for each invoice still open, so paying one is a press away."""
    rows = [
        [
            InlineKeyboardButton(
                text=t("recharge-pay-open", id=invoice.id, amount=format_money(invoice.amount, invoice.currency)),
                url=invoice.url,
            )
        ]
        for invoice in refused.open
        if invoice.url
    ]
    rows.append([button(t, "menu-home", Menu(action="home").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def amount_problem(t: Translator, topups: TopUps, config: Config, amount: Decimal | str) -> str | None:
    """What is wrong with an amount (a parse problem, or outside the limits), in words; None if nothing."""
    if isinstance(amount, str):
        return t(amount)
    limits = await topups.limits()
    if amount < limits.minimum:
        return t("recharge-too-small", amount=format_money(limits.minimum, config.shop.currency))
    if amount > limits.maximum:
        return t("recharge-too-large", amount=format_money(limits.maximum, config.shop.currency))
    return None


async def top_up(
    event: Message | CallbackQuery,
    t: Translator,
    topups: TopUps,
    config: Config,
    state: FSMContext,
    amount: Decimal | str,
) -> None:
    """Make the invoice for `amount`, or say what is wrong with it and wait for another one."""
    assert event.from_user is not None
    problem = await amount_problem(t, topups, config, amount)
    if problem is None:
        assert isinstance(amount, Decimal)
        try:
            invoice = await topups.create(event.from_user.id, amount)
        except Refused as refused:
            problem = await refusal_text(t, topups, config, refused)
            if refused.reason not in ("too_small", "too_large"):  # another amount would not help
                await state.clear()
                markup = (
                    open_invoices_keyboard(t, refused) if isinstance(refused, TooManyOpenInvoices) else main_menu(t)
                )
                await show(event, problem, markup)
                return
        else:
            await state.clear()
            await show(event, *invoice_screen(t, invoice))
            return
    await state.set_state(TopUpEntry.amount)
    await show(event, problem, leave_keyboard(t))


async def on_recharge_command(
    message: Message, command: CommandObject, t: Translator, topups: TopUps, config: Config, state: FSMContext
) -> None:
    await state.clear()
    if command.args:
        await top_up(message, t, topups, config, state, parse_amount(command.args, config.shop.currency))
        return
    await show(message, *await choice_screen(t, topups, config))


async def on_topup_button(
    query: CallbackQuery, t: Translator, topups: TopUps, config: Config, state: FSMContext
) -> None:
    await state.clear()
    await show(query, *await choice_screen(t, topups, config))


async def on_preset_chosen(
    query: CallbackQuery, callback_data: TopUpAmount, t: Translator, topups: TopUps, config: Config, state: FSMContext
) -> None:
    # The same checks as a typed amount: a forged preset is just another amount to refuse.
    await state.clear()
    await top_up(query, t, topups, config, state, parse_amount(callback_data.amount, config.shop.currency))


async def on_other_amount(
    query: CallbackQuery, t: Translator, topups: TopUps, config: Config, state: FSMContext
) -> None:
    await state.set_state(TopUpEntry.amount)
    text = f"{t('recharge-ask-amount')}\n\n{await limits_text(t, topups, config.shop.currency)}"
    await show(query, text, leave_keyboard(t))


async def on_amount_typed(message: Message, t: Translator, topups: TopUps, config: Config, state: FSMContext) -> None:
    assert message.text is not None
    await top_up(message, t, topups, config, state, parse_amount(message.text, config.shop.currency))


async def on_leave(query: CallbackQuery, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await show(query, t("menu-title"), main_menu(t))


async def on_check_payment(
    query: CallbackQuery, callback_data: TopUpCheck, t: Translator, topups: TopUps, callback_answer: CallbackAnswer
) -> None:
    """Ask Heleket once about the user's own invoice; anyone else's (or an unknown id) is 'not found'."""
    callback_answer.show_alert = True
    invoice_id = callback_data.invoice
    try:
        status = await topups.check(query.from_user.id, invoice_id) if 0 < invoice_id <= MAX_INVOICE_ID else None
    except Refused:
        callback_answer.text = t("recharge-unavailable")
        return
    if status is None:
        callback_answer.text = t("topup-not-found")
        return
    key, finished = STATUS_WORDS.get(status, ("topup-status-waiting", False))
    callback_answer.text = t(key)
    if finished:
        paid = key == "topup-status-paid"
        next_step = (
            button(t, "menu-balance", Menu(action="balance").pack())
            if paid
            else button(t, "menu-topup", Menu(action="topup").pack())
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[next_step, button(t, "menu-home", Menu(action="home").pack())]])
        await show(query, f"{t('topup-title', id=invoice_id)}\n{t(key)}", markup)


def build_router() -> Router:
    router = Router(name=__name__)
    waiting = StateFilter(TopUpEntry.amount)
    # Order: /recharge and /cancel first, then any other command leaves the prompt and moves on,
    # and only plain text is taken as an amount.
    # Creating a top-up is a payment action: it also draws from the user's payments limit.
    router.message.register(on_recharge_command, Command("recharge"), flags=PAYMENT)
    router.message.register(on_amount_typed, waiting, F.text, ~F.text.startswith("/"), flags=PAYMENT)
    router.callback_query.register(on_topup_button, Menu.filter(F.action == "topup"))
    router.callback_query.register(on_preset_chosen, TopUpAmount.filter(), flags=PAYMENT)
    router.callback_query.register(on_other_amount, TopUpOther.filter())
    router.callback_query.register(on_leave, TopUpLeave.filter())
    # Checking a payment asks Heleket: a payment action too, so pressing it in a loop is limited.
    router.callback_query.register(on_check_payment, TopUpCheck.filter(), flags=PAYMENT)
    return router
