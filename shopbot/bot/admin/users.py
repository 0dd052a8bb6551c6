"""User lookup (by id or @username) and balance adjustments.

An adjustment is typed (a signed amount, then a reason nobody may skip), shown as a preview with the
balance before and after, and confirmed twice. The second confirmation posts one ledger `adjustment`
under the key `adjust:<token>` — the token is made for that preview, so a double press, a replayed
button or a second instance racing the first moves the money once — and writes its audit entry in
the same transaction. Taking money away never takes a balance below zero: the ledger refuses.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

import asyncpg
from aiogram import F, Router
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin import referrals
from shopbot.bot.admin.callbacks import Adjust, AdminFlow, AdminMenu, UserAction
from shopbot.bot.admin.dashboard import stamp
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.db.audit import record_audit
from shopbot.db.queries import queries
from shopbot.ledger import InsufficientFunds, Ledger, MovementType, SystemAccount
from shopbot.locales import Translator
from shopbot.money import format_money

SHOWN = 5  # movements and orders on a profile
MAX_ADJUSTMENT = Decimal("100000")
REASON_LENGTH = (3, 200)
PENDING = "admin_adjust"  # FSM data: the adjustment being typed or confirmed
DONE = "admin_adjust_done"  # the token of the last one made, to answer a second press
_AMOUNT = re.compile(r"([+-]?)([0-9]{1,9}(?:[.,][0-9]{1,2})?)")
_USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")


async def find_user(pool: asyncpg.Pool, typed: str) -> asyncpg.Record | None:
    """A user by Telegram id or @username; None when the shop has never seen them (or the text is neither)."""
    text = typed.strip()
    if text.isascii() and text.isdigit() and len(text) <= 19:
        return await queries.admin_users.find_user_by_id(pool, int(text))
    match = _USERNAME.fullmatch(text)
    return await queries.admin_users.find_user_by_username(pool, match.group(1)) if match else None


async def profile_text(t: Translator, pool: asyncpg.Pool, ledger: Ledger, config: Config, user: asyncpg.Record) -> str:
    def money(amount: Decimal) -> str:
        return format_money(amount, config.shop.currency)

    balance = await ledger.balance(user["id"])
    name = " ".join(part for part in (user["first_name"], user["last_name"]) if part) or "—"
    lines = [
        t("admin-user-title", name=name, id=user["id"], username=f"@{user['username']}" if user["username"] else "—"),
        t(
            "admin-user-seen",
            lang=user["language"],
            first=stamp(user["first_seen_at"]),
            last=stamp(user["last_seen_at"]),
        ),
        t("admin-user-balance", balance=money(balance.available), amount=money(balance.held)),
        *await referrals.profile_lines(t, pool, config, user["id"]),
        "",
        t("admin-user-movements"),
    ]
    movements = await queries.admin_users.recent_movements(pool, user["id"], SHOWN)
    lines += [
        t(
            "admin-user-movement",
            id=m["id"],
            type=m["type"],
            amount=signed(m["available_change"], config),
            held=signed(m["held_change"], config),
            when=stamp(m["created_at"]),
            memo=m["memo"][:60],
        )
        for m in movements
    ] or [t("admin-none")]
    lines += ["", t("admin-user-orders")]
    orders = await queries.admin_users.recent_orders(pool, user["id"], SHOWN)
    lines += [
        t(
            "admin-user-order",
            id=o["id"],
            product=o["product"],
            count=o["quantity"],
            recipient=o["recipient"],
            amount=money(o["price"]),
            state=t(f"admin-state-{o['state']}"),
            when=stamp(o["created_at"]),
        )
        for o in orders
    ] or [t("admin-none")]
    return "\n".join(lines)


def signed(amount: Decimal, config: Config) -> str:
    return ("+" if amount > 0 else "") + format_money(amount, config.shop.currency)


def profile_keyboard(t: Translator, user_id: int) -> InlineKeyboardMarkup:
    return keyboard(
        [button(t, "admin-adjust", UserAction(action="adjust", user_id=user_id).pack())],
        [
            button(t, "admin-user-refresh", UserAction(action="show", user_id=user_id).pack()),
            button(t, "admin-user-another", AdminMenu(action="users").pack()),
        ],
        [back_to_admin(t)],
    )


async def show_profile(
    event: Message | CallbackQuery,
    t: Translator,
    pool: asyncpg.Pool,
    ledger: Ledger,
    config: Config,
    user: asyncpg.Record,
) -> None:
    await show(event, await profile_text(t, pool, ledger, config, user), profile_keyboard(t, user["id"]))


# --- lookup ---------------------------------------------------------------------------------------------


async def on_users_menu(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(AdminFlow.user_query)
    await show(query, t("admin-user-ask"), keyboard([back_to_admin(t)]))


async def on_user_query_text(
    message: Message, state: FSMContext, t: Translator, pool: asyncpg.Pool, ledger: Ledger, config: Config
) -> None:
    assert message.from_user is not None
    typed = (message.text or "").strip()
    user = await find_user(pool, typed)
    if user is None:
        await message.answer(t("admin-user-not-found", typed=typed[:64]), reply_markup=keyboard([back_to_admin(t)]))
        return
    await state.set_state(None)
    await record_audit(pool, admin_id=message.from_user.id, action="user.lookup", target=f"user:{user['id']}")
    await show_profile(message, t, pool, ledger, config, user)


async def on_user_button(
    query: CallbackQuery,
    callback_data: UserAction,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    ledger: Ledger,
    config: Config,
    callback_answer: CallbackAnswer,
) -> None:
    user = await queries.admin_users.find_user_by_id(pool, callback_data.user_id)
    if user is None or callback_data.action not in ("show", "adjust"):
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    if callback_data.action == "show":
        await show_profile(query, t, pool, ledger, config, user)
        return
    await state.set_state(AdminFlow.adjust_amount)
    await state.update_data({PENDING: {"user_id": user["id"]}})
    balance = await ledger.balance(user["id"])
    await show(
        query,
        t("admin-adjust-ask-amount", id=user["id"], balance=format_money(balance.available, config.shop.currency)),
        keyboard([button(t, "admin-cancel", UserAction(action="show", user_id=user["id"]).pack())]),
    )


# --- adjusting ------------------------------------------------------------------------------------------


def parse_adjustment(text: str) -> Decimal | None:
    """ "+5", "-2.50", "10" (adds) as a non-zero Decimal to the cent; None for anything else."""
    match = _AMOUNT.fullmatch("".join(text.split()))
    if not match:
        return None
    amount = Decimal(match.group(2).replace(",", "."))
    if amount == 0 or amount > MAX_ADJUSTMENT:
        return None
    return -amount if match.group(1) == "-" else amount


async def pending_of(state: FSMContext) -> dict[str, Any] | None:
    return (await state.get_data()).get(PENDING)


async def on_adjust_amount_text(message: Message, state: FSMContext, t: Translator) -> None:
    pending = await pending_of(state)
    if not pending:
        await state.set_state(None)
        await message.answer(t("admin-stale"), reply_markup=keyboard([back_to_admin(t)]))
        return
    amount = parse_adjustment(message.text or "")
    if amount is None:
        await message.answer(t("admin-adjust-bad-amount"))
        return
    await state.set_state(AdminFlow.adjust_reason)
    await state.update_data({PENDING: {**pending, "amount": str(amount)}})
    await message.answer(t("admin-adjust-ask-reason"))


async def on_adjust_reason_text(
    message: Message, state: FSMContext, t: Translator, ledger: Ledger, config: Config
) -> None:
    pending = await pending_of(state)
    if not pending or "amount" not in pending:
        await state.set_state(None)
        await message.answer(t("admin-stale"), reply_markup=keyboard([back_to_admin(t)]))
        return
    reason = " ".join((message.text or "").split())
    if not REASON_LENGTH[0] <= len(reason) <= REASON_LENGTH[1]:
        await message.answer(t("admin-adjust-bad-reason", min=REASON_LENGTH[0], max=REASON_LENGTH[1]))
        return
    await state.set_state(None)
    token = secrets.token_urlsafe(12)
    pending = {**pending, "reason": reason, "token": token, "stage": "preview"}
    await state.update_data({PENDING: pending})
    text = await preview_text(t, ledger, config, pending)
    await message.answer(
        text + "\n\n" + t("admin-adjust-check"),
        reply_markup=keyboard(
            [button(t, "admin-adjust-continue", Adjust(step="check", token=token).pack())],
            [button(t, "admin-cancel", Adjust(step="no", token=token).pack())],
        ),
    )


async def preview_text(t: Translator, ledger: Ledger, config: Config, pending: dict[str, Any]) -> str:
    amount = Decimal(pending["amount"])
    before = (await ledger.balance(pending["user_id"])).available
    currency = config.shop.currency
    return t(
        "admin-adjust-preview",
        id=pending["user_id"],
        amount=signed(amount, config),
        before=format_money(before, currency),
        after=format_money(before + amount, currency),
        reason=pending["reason"],
    )


async def on_adjust_button(
    query: CallbackQuery,
    callback_data: Adjust,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    ledger: Ledger,
    config: Config,
    callback_answer: CallbackAnswer,
) -> None:
    data = await state.get_data()
    pending: dict[str, Any] | None = data.get(PENDING)
    if not pending or pending.get("token") != callback_data.token:
        done = data.get(DONE) == callback_data.token
        callback_answer.text = t("admin-adjust-already" if done else "stale-button")
        callback_answer.show_alert = True
        return
    if callback_data.step == "no":
        await state.update_data({PENDING: None})
        callback_answer.text = t("admin-cancelled")
        await show(
            query,
            t("admin-adjust-cancelled"),
            keyboard(
                [button(t, "admin-user-refresh", UserAction(action="show", user_id=pending["user_id"]).pack())],
                [back_to_admin(t)],
            ),
        )
        return
    if callback_data.step == "check" and pending.get("stage") == "preview":
        await state.update_data({PENDING: {**pending, "stage": "confirm"}})
        text = await preview_text(t, ledger, config, pending)
        await show(
            query,
            text + "\n\n" + t("admin-adjust-really"),
            keyboard(
                [button(t, "admin-adjust-yes", Adjust(step="do", token=pending["token"]).pack())],
                [button(t, "admin-cancel", Adjust(step="no", token=pending["token"]).pack())],
            ),
        )
        return
    if callback_data.step == "do" and pending.get("stage") == "confirm":
        # The pending adjustment leaves the FSM data first: a second press finds nothing to do.
        await state.update_data({PENDING: None, DONE: pending["token"]})
        if not await adjust(query, t, pool, ledger, config, pending, callback_answer):
            await state.update_data({DONE: None})  # refused: a second press is not "already made"
        return
    callback_answer.text, callback_answer.show_alert = t("stale-button"), True


async def adjust(
    query: CallbackQuery,
    t: Translator,
    pool: asyncpg.Pool,
    ledger: Ledger,
    config: Config,
    pending: dict[str, Any],
    callback_answer: CallbackAnswer,
) -> bool:
    """Post the adjustment and its audit entry together, once per token; False when the ledger refused it."""
    admin_id, user_id = query.from_user.id, int(pending["user_id"])
    amount, reason, key = Decimal(pending["amount"]), pending["reason"], f"adjust:{pending['token']}"
    await ledger.open_accounts(user_id, SystemAccount.ADJUSTMENTS)
    back = keyboard(
        [button(t, "admin-user-refresh", UserAction(action="show", user_id=user_id).pack())], [back_to_admin(t)]
    )
    try:
        async with pool.acquire() as conn, conn.transaction():
            before = await ledger.balance(user_id, conn)
            common: dict[str, Any] = {
                "user_id": user_id,
                "amount": abs(amount),
                "key": key,
                "type": MovementType.ADJUSTMENT,
                "reference": f"admin:{admin_id}",
                "memo": reason[:200],
                "conn": conn,
            }
            if amount > 0:
                posted = await ledger.credit(source=SystemAccount.ADJUSTMENTS, **common)
            else:
                posted = await ledger.debit(destination=SystemAccount.ADJUSTMENTS, **common)
            if posted.applied:
                await record_audit(
                    conn,
                    admin_id=admin_id,
                    action="balance.adjust",
                    target=f"user:{user_id}",
                    before={"available": before.available},
                    after={"available": posted.available, "amount": amount, "movement": posted.movement_id},
                    reason=reason,
                )
    except InsufficientFunds:
        balance = await ledger.balance(user_id)
        callback_answer.text, callback_answer.show_alert = t("admin-adjust-below-zero"), True
        await show(
            query,
            t(
                "admin-adjust-refused",
                balance=format_money(balance.available, config.shop.currency),
                amount=signed(amount, config),
            ),
            back,
        )
        return False
    if not posted.applied:
        callback_answer.text, callback_answer.show_alert = t("admin-adjust-already"), True
        return True
    callback_answer.text = t("admin-adjust-done-short")
    await show(
        query,
        t(
            "admin-adjust-done",
            id=user_id,
            amount=signed(amount, config),
            balance=format_money(posted.available or Decimal(0), config.shop.currency),
        ),
        back,
    )
    return True


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_users_menu, AdminMenu.filter(F.action == "users"), is_admin)
    router.callback_query.register(on_user_button, UserAction.filter(), is_admin)
    router.callback_query.register(on_adjust_button, Adjust.filter(), is_admin)
    typed = (F.text, ~F.text.startswith("/"))
    router.message.register(on_user_query_text, StateFilter(AdminFlow.user_query), *typed, is_admin)
    router.message.register(on_adjust_amount_text, StateFilter(AdminFlow.adjust_amount), *typed, is_admin)
    router.message.register(on_adjust_reason_text, StateFilter(AdminFlow.adjust_reason), *typed, is_admin)
    return router
