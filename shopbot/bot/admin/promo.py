"""Promo codes in the admin menu: the newest codes with their uses, a new code in one typed message, an
on/off switch per code, and a change of its limits (uses, per user, expiry; never what it gives, which users
were told). Creating, changing and switching are audited in the same transaction as the change."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from aiogram import F, Router
from aiogram.filters import Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin.callbacks import AdminFlow, AdminMenu, PromoAction
from shopbot.bot.admin.dashboard import stamp
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.admin.promo_input import BadCode, parse_limits, parse_new_code
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.db.audit import record_audit
from shopbot.db.queries import queries
from shopbot.locales import Translator
from shopbot.money import format_money

LISTED = 15
EDITED = "admin_promo_code"  # FSM data: the id of the code whose limits are being typed


def code_line(t: Translator, row: asyncpg.Record, currency: str) -> str:
    """One code as the admin reads it: what it gives, its uses, its limits, and whether it works now."""
    if row["kind"] == "credit":
        gives = t("admin-promo-gives-credit", amount=format_money(row["amount"], currency))
    else:
        gives = t(
            "admin-promo-gives-discount",
            percent=f"{row['percent'].normalize():f}",
            cap=format_money(row["cap"], currency),
        )
    expired = row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC)
    status = (
        "admin-promo-off"
        if not row["enabled"]
        else "admin-promo-expired"
        if expired
        else "admin-promo-used-up"
        if row["uses"] >= row["max_uses"]
        else "admin-promo-on"
    )
    until = t("admin-promo-until", when=stamp(row["expires_at"])) if row["expires_at"] is not None else ""
    return t(
        "admin-promo-line",
        code=row["code"],
        gives=gives,
        uses=row["uses"],
        max=row["max_uses"],
        per_user=row["per_user"],
        until=until,
        status=t(status),
    )


async def promo_screen(
    t: Translator, pool: asyncpg.Pool, config: Config, note: str = ""
) -> tuple[str, InlineKeyboardMarkup]:
    rows = await queries.promo.list_codes(pool, LISTED)
    lines = [t("admin-promo-title")] + (
        [code_line(t, row, config.shop.currency) for row in rows] or [t("admin-promo-none")]
    )
    per_code = []
    for row in rows:
        switch = button(
            t,
            "admin-promo-switch-off" if row["enabled"] else "admin-promo-switch-on",
            PromoAction(action="toggle", code_id=row["id"]).pack(),
        )
        change = button(t, "admin-promo-change", PromoAction(action="edit", code_id=row["id"]).pack())
        switch.text, change.text = f"{switch.text} {row['code']}", f"{change.text} {row['code']}"
        per_code.append([switch, change])
    return (note + "\n\n" if note else "") + "\n\n".join(lines), keyboard(
        [button(t, "admin-promo-new", PromoAction(action="new", code_id=0).pack())], *per_code, [back_to_admin(t)]
    )


async def on_promo_menu(
    query: CallbackQuery, state: FSMContext, t: Translator, pool: asyncpg.Pool, config: Config
) -> None:
    await state.set_state(None)
    await show(query, *await promo_screen(t, pool, config))


async def on_promo_button(
    query: CallbackQuery,
    callback_data: PromoAction,
    state: FSMContext,
    t: Translator,
    pool: asyncpg.Pool,
    config: Config,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.action == "new":
        await state.set_state(AdminFlow.promo_code)
        await show(query, t("admin-promo-ask"), keyboard([button(t, "admin-cancel", AdminMenu(action="promo").pack())]))
        return
    if callback_data.action == "edit":
        row = await queries.promo.get_code(pool, callback_data.code_id)
        if row is None:
            callback_answer.text, callback_answer.show_alert = t("stale-button"), True
            return
        await state.set_state(AdminFlow.promo_limits)
        await state.update_data({EDITED: row["id"]})
        await show(
            query,
            code_line(t, row, config.shop.currency) + "\n\n" + t("admin-promo-ask-limits"),
            keyboard([button(t, "admin-cancel", AdminMenu(action="promo").pack())]),
        )
        return
    if callback_data.action != "toggle":
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.promo.get_code(conn, callback_data.code_id)
        if row is None:
            callback_answer.text, callback_answer.show_alert = t("stale-button"), True
            return
        changed = await queries.promo.set_code_enabled(conn, row["id"], not row["enabled"])
        if changed is not None:
            await record_audit(
                conn,
                admin_id=query.from_user.id,
                action="promo.on" if changed["enabled"] else "promo.off",
                target=f"promo:{row['code']}",
                before={"enabled": row["enabled"]},
                after={"enabled": changed["enabled"]},
            )
    await show(query, *await promo_screen(t, pool, config, t("admin-saved")))


async def on_new_code_text(
    message: Message, state: FSMContext, t: Translator, pool: asyncpg.Pool, config: Config
) -> None:
    assert message.from_user is not None
    try:
        new = parse_new_code(message.text or "", datetime.now(UTC).date())
    except BadCode as bad:  # the admin may send it again, corrected; nothing was created
        await message.answer(t(bad.key) + "\n\n" + t("admin-promo-ask"))
        return
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.promo.create_code(
            conn,
            new.code,
            new.kind,
            new.amount,
            new.percent,
            new.cap,
            new.max_uses,
            new.per_user,
            new.expires_at,
            message.from_user.id,
        )
        if row is not None:
            await record_audit(
                conn,
                admin_id=message.from_user.id,
                action="promo.create",
                target=f"promo:{new.code}",
                after={
                    "kind": new.kind,
                    "amount": new.amount,
                    "percent": new.percent,
                    "cap": new.cap,
                    "max_uses": new.max_uses,
                    "per_user": new.per_user,
                    "expires_at": new.expires_at.isoformat() if new.expires_at else None,
                },
            )
    if row is None:
        await message.answer(t("admin-promo-taken", code=new.code))
        return
    await state.set_state(None)
    await show(message, *await promo_screen(t, pool, config, t("admin-saved")))


async def on_limits_text(
    message: Message, state: FSMContext, t: Translator, pool: asyncpg.Pool, config: Config
) -> None:
    assert message.from_user is not None
    code_id = (await state.get_data()).get(EDITED)
    if not isinstance(code_id, int):
        await state.set_state(None)
        await message.answer(t("admin-stale"), reply_markup=keyboard([back_to_admin(t)]))
        return
    try:
        limits = parse_limits((message.text or "").split(), datetime.now(UTC).date())
    except BadCode as bad:
        await message.answer(t(bad.key) + "\n\n" + t("admin-promo-ask-limits"))
        return
    async with pool.acquire() as conn, conn.transaction():
        before = await queries.promo.get_code(conn, code_id)
        after = await queries.promo.change_code(conn, code_id, limits.max_uses, limits.per_user, limits.expires_at)
        if before is not None and after is not None:
            await record_audit(
                conn,
                admin_id=message.from_user.id,
                action="promo.change",
                target=f"promo:{before['code']}",
                before=limits_of(before),
                after=limits_of(after),
            )
    if before is None:
        await state.set_state(None)
        await message.answer(t("admin-stale"), reply_markup=keyboard([back_to_admin(t)]))
        return
    if after is None:  # fewer uses than are taken already: nothing changed
        await message.answer(t("admin-promo-below-uses", uses=before["uses"]) + "\n\n" + t("admin-promo-ask-limits"))
        return
    await state.set_state(None)
    await show(message, *await promo_screen(t, pool, config, t("admin-saved")))


def limits_of(row: asyncpg.Record) -> dict[str, object]:
    expires_at = row["expires_at"]
    return {
        "max_uses": row["max_uses"],
        "per_user": row["per_user"],
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
    }


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_promo_menu, AdminMenu.filter(F.action == "promo"), is_admin)
    router.callback_query.register(on_promo_button, PromoAction.filter(), is_admin)
    router.message.register(
        on_new_code_text, StateFilter(AdminFlow.promo_code), F.text, ~F.text.startswith("/"), is_admin
    )
    router.message.register(
        on_limits_text, StateFilter(AdminFlow.promo_limits), F.text, ~F.text.startswith("/"), is_admin
    )
    return router
