"""Orders needing attention: those being verified, and those queued or paying for too long.

Retry makes an order due at once; the worker then does what it would have done anyway (pay a queued
order, verify one whose payment may have left). Refund goes through the order state machine, which
releases the hold in the ledger, and never blindly:
- The admin holds the worker's wallet lock while deciding, so no payment for the wallet is under way
  and the order's state cannot change underneath (if the worker is busy, the admin is asked to retry).
- A queued order the service has never seen (no Fragment order yet) has no signed payment (the payment
  is signed and stored as the order enters `paying`), so it can be refunded.
- Any other order is refunded only when the Fragment service confirms its order failed or expired (or,
  for a queued one, that it is still unpaid) — the worker's own rule. Paid: it is made due, and the
  worker completes it. Anything else: the payment may still land, and nothing is refunded.
- Whatever the service says, a hold is never released while a payment we signed for the order can still
  land: the refund itself refuses (PaymentMayLand).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiogram import F, Router
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, InlineKeyboardButton
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin.callbacks import AdminMenu, OrderAction
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.admin.services import AdminServices
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.db.audit import record_audit
from shopbot.db.queries import queries
from shopbot.fulfilment.answers import FAILED, PAID, status_of
from shopbot.fulfilment.fragment import FragmentFailure
from shopbot.fulfilment.orders import Order, Orders, PaymentMayLand
from shopbot.locales import Translator
from shopbot.metrics import Metrics
from shopbot.money import format_money

log = logging.getLogger(__name__)
SHOWN = 8
ADMIN_REFUND = "refund-reason-admin"


class WalletBusy(Exception):
    """The worker holds the wallet lock: a payment may be under way right now."""


async def attention_text(t: Translator, pool: asyncpg.Pool, admin: AdminServices) -> tuple[str, list[asyncpg.Record]]:
    rows = await queries.admin_orders.orders_needing_attention(pool, admin.attention_after, SHOWN)
    if not rows:
        return t("admin-attention-none"), []
    lines = [t("admin-attention-title", count=len(rows)), ""]
    for row in rows:
        lines.append(
            t(
                "admin-attention-order",
                id=row["id"],
                product=row["product"],
                count=row["quantity"],
                recipient=row["recipient"],
                amount=format_money(row["price"], row["currency"]),
                state=t(f"admin-state-{row['state']}"),
                attempts=row["attempts"],
                error=(row["last_error"] or "—")[:80],
            )
        )
    return "\n".join(lines), rows


async def show_attention(
    query: CallbackQuery, t: Translator, pool: asyncpg.Pool, admin: AdminServices, note: str = ""
) -> None:
    text, rows = await attention_text(t, pool, admin)
    # The order number goes on each button, so the admin sees which order a press is for.
    buttons: list[list[InlineKeyboardButton]] = [
        [
            InlineKeyboardButton(
                text=f"{t('admin-retry')} #{row['id']}",
                callback_data=OrderAction(action="retry", order_id=row["id"]).pack(),
            ),
            InlineKeyboardButton(
                text=f"{t('admin-refund')} #{row['id']}",
                callback_data=OrderAction(action="refund", order_id=row["id"]).pack(),
            ),
        ]
        for row in rows
    ]
    buttons.append([button(t, "admin-refresh", AdminMenu(action="attention").pack())])
    buttons.append([back_to_admin(t)])
    await show(query, (note + "\n\n" if note else "") + text, keyboard(*buttons))


async def on_attention_menu(query: CallbackQuery, t: Translator, pool: asyncpg.Pool, admin: AdminServices) -> None:
    await show_attention(query, t, pool, admin)


@contextlib.asynccontextmanager
async def wallet_held(pool: asyncpg.Pool, admin: AdminServices) -> AsyncIterator[None]:
    """The worker's wallet lock, for as long as the admin decides; WalletBusy if the worker has it."""
    if admin.client is None:  # selling is off: no worker pays anything
        yield
        return
    address = admin.client.address
    async with pool.acquire() as conn:
        if not await queries.admin_orders.try_wallet_lock(conn, address):
            raise WalletBusy
        try:
            yield
        finally:
            await queries.orders.wallet_unlock(conn, address)


async def on_order_button(
    query: CallbackQuery,
    callback_data: OrderAction,
    t: Translator,
    pool: asyncpg.Pool,
    orders: Orders,
    admin: AdminServices,
    metrics: Metrics,
    callback_answer: CallbackAnswer,
) -> None:
    order = await orders.get(callback_data.order_id)
    action = callback_data.action
    if order is None or action not in ("retry", "refund", "refund_ok"):
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True
        return
    if order.state in ("completed", "refunded"):
        callback_answer.text, callback_answer.show_alert = (
            t("admin-order-final", id=order.id, state=t(f"admin-state-{order.state}")),
            True,
        )
        await show_attention(query, t, pool, admin)
        return
    if action == "retry":
        done = await orders.retry_now(order.id)
        if done:
            await record_audit(
                pool,
                admin_id=query.from_user.id,
                action="order.retry",
                target=f"order:{order.id}",
                before={"state": order.state},
                after={"state": order.state, "due": "now"},
            )
        callback_answer.text = t("admin-order-retrying", id=order.id)
        await show_attention(query, t, pool, admin)
        return
    if action == "refund":
        await show(
            query,
            t(
                "admin-refund-confirm",
                id=order.id,
                user=order.user_id,
                amount=format_money(order.price, order.currency),
                state=t(f"admin-state-{order.state}"),
            ),
            keyboard(
                [button(t, "admin-refund-yes", OrderAction(action="refund_ok", order_id=order.id).pack())],
                [button(t, "admin-back-to-orders", AdminMenu(action="attention").pack())],
            ),
        )
        return
    note = await refund(t, pool, orders, admin, metrics, order, query.from_user.id)
    callback_answer.text, callback_answer.show_alert = note, True
    await show_attention(query, t, pool, admin, note)


async def refund(
    t: Translator,
    pool: asyncpg.Pool,
    orders: Orders,
    admin: AdminServices,
    metrics: Metrics,
    order: Order,
    admin_id: int,
) -> str:
    """Refund the order if that is safe now; what happened, for the admin."""
    try:
        async with wallet_held(pool, admin):
            current = await orders.get(order.id)
            assert current is not None
            if current.state in ("completed", "refunded"):
                return t("admin-order-final", id=current.id, state=t(f"admin-state-{current.state}"))
            reason, verdict = ADMIN_REFUND, ""
            if current.state != "queued" or current.fragment_order_id is not None:
                # The service has seen this order: what it says decides.
                verdict = await ask_service(admin, current)
                if verdict in PAID:
                    await orders.retry_now(current.id)  # the worker completes it and captures the hold
                    return t("admin-refund-paid", id=current.id)
                unpaid_in_queue = current.state == "queued" and verdict == "created"
                if verdict not in FAILED and not unpaid_in_queue:
                    return t("admin-refund-unsafe", id=current.id, status=verdict or "—")
                if not unpaid_in_queue:
                    reason = "refund-reason-failed" if verdict == "failed" else "refund-reason-expired"
            try:
                done = await orders.refund(current, reason)
            except PaymentMayLand:
                return t("admin-refund-unsafe", id=current.id, status=verdict or "—")
            if done is None:
                return t("admin-order-final", id=current.id, state="—")
            await record_audit(
                pool,
                admin_id=admin_id,
                action="order.refund",
                target=f"order:{current.id}",
                before={"state": current.state},
                after={"state": done.state, "reason": reason},
                reason=reason,
            )
    except WalletBusy:
        return t("admin-refund-busy", id=order.id)
    metrics.orders.labels("refunded").inc()
    if admin.notices is not None:
        try:
            await admin.notices.refunded(done, reason)
        except Exception:
            log.warning("could not tell user %s about the refund of order %s", done.user_id, done.id, exc_info=True)
    return t("admin-refund-done", id=done.id, amount=format_money(done.price, done.currency))


async def ask_service(admin: AdminServices, order: Order) -> str:
    """The Fragment service's status of the order, lower case; "" when it cannot be known now."""
    if admin.client is None or order.fragment_order_id is None:
        return ""
    try:
        answer = await admin.client.get_order(order.fragment_order_id)
    except FragmentFailure as exc:
        log.warning("could not verify order %s for an admin refund: %s", order.id, exc)
        return ""
    return status_of(answer)


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_attention_menu, AdminMenu.filter(F.action == "attention"), is_admin)
    router.callback_query.register(on_order_button, OrderAction.filter(), is_admin)
    return router
