"""The dashboard: today / 7 days / 30 days of top-ups, orders, sales, Fragment cost, revenue and margin,
users, the shop's health, and a chart of daily sales and cost. Figures come from the ledger and the
orders table, never from counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.callback_answer import CallbackAnswer

from shopbot.bot.admin.callbacks import AdminMenu, Dashboard
from shopbot.bot.admin.chart import render_sales_chart
from shopbot.bot.admin.keyboards import back_to_admin, keyboard
from shopbot.bot.admin.referrals import dashboard_lines as referral_lines
from shopbot.bot.admin.services import AdminServices
from shopbot.bot.keyboards import button
from shopbot.bot.screens import show
from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.fulfilment.costs import margin_percent
from shopbot.locales import Translator
from shopbot.money import format_money

log = logging.getLogger(__name__)
PERIODS = ("today", "7d", "30d")
CHART_DAYS = 30


def period_start(period: str, now: datetime | None = None) -> datetime:
    """Today: since midnight UTC; otherwise the last 7 or 30 days up to now."""
    now = now or datetime.now(UTC)
    if period == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(days=int(period.removesuffix("d")))


@dataclass(frozen=True, slots=True)
class Figures:
    topups: int
    topped_up: Decimal
    orders: dict[str, int]  # orders placed in the period, by their state now: every state, in the order shown
    sales: Decimal
    cost: Decimal
    revenue: Decimal
    uncosted: int  # sales booked without a Fragment cost (no TON rate then)
    stars: int
    premium: int
    premium_months: int
    new_users: int
    active_users: int


async def read_figures(pool: asyncpg.Pool, since: datetime) -> Figures:
    row = await queries.admin_dashboard.period_figures(pool, since)
    states = {r["state"]: r["n"] for r in await queries.orders.orders_by_state(pool, since)}
    return Figures(
        row["topups"],
        row["topped_up"],
        states,
        row["sales"],
        row["cost"],
        row["revenue"],
        row["uncosted"],
        int(row["stars"]),
        row["premium"],
        int(row["premium_months"]),
        row["new_users"],
        row["active_users"],
    )


async def cookie_line(t: Translator, pool: asyncpg.Pool, admin: AdminServices) -> str:
    if not admin.kyc:
        return t("admin-cookies-not-needed")
    row = await queries.admin_dashboard.cookie_status(pool)
    if row is None:
        return t("admin-cookies-none")
    if row["alerted_at"] is not None:
        return t("admin-cookies-lost", when=stamp(row["alerted_at"]))
    checked = row["checked_at"] or row["obtained_at"]
    return t("admin-cookies-ok", when=stamp(checked))


def margin_lines(t: Translator, figures: Figures) -> list[str]:
    """The period's margin (revenue over sales), and a warning when some sales carry no cost."""
    lines = [
        t("admin-dash-margin", margin=f"{margin_percent(figures.sales, figures.cost)} %")
        if figures.sales > 0
        else t("admin-dash-margin-none")
    ]
    if figures.uncosted:
        lines.append(t("admin-dash-uncosted", count=figures.uncosted))
    return lines


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def dashboard_text(t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices, period: str) -> str:
    since = period_start(period)
    figures = await read_figures(pool, since)
    currency = config.shop.currency

    def money(amount: Decimal) -> str:
        return format_money(amount, currency)

    counts = ", ".join(f"{t(f'admin-state-{state}')} {count}" for state, count in figures.orders.items() if count)
    orders = counts or t("admin-none")
    wallet = admin.wallet_ton()
    circuits = await admin.circuits()
    lines = [
        t("admin-dash-title", period=t(f"admin-period-{period}"), since=stamp(since)),
        "",
        t("admin-dash-topups", count=figures.topups, amount=money(figures.topped_up)),
        t("admin-dash-orders", orders=orders),
        t("admin-dash-sold", stars=figures.stars, count=figures.premium, months=figures.premium_months),
        t("admin-dash-revenue", sales=money(figures.sales), cost=money(figures.cost), revenue=money(figures.revenue)),
        *margin_lines(t, figures),
        t("admin-dash-users", new=figures.new_users, active=figures.active_users),
        *await referral_lines(t, pool, config, since),
        "",
        t("admin-dash-wallet", ton=f"{wallet:.4f}" if wallet is not None else "—"),
        await cookie_line(t, pool, admin),
        t(
            "admin-dash-circuits",
            states=", ".join(f"{name}: {state}" for name, state in sorted(circuits.items())) or "—",
        ),
    ]
    return "\n".join(lines)


def dashboard_keyboard(t: Translator, period: str) -> InlineKeyboardMarkup:
    periods = [
        InlineKeyboardButton(
            text=("• " if p == period else "") + t(f"admin-period-{p}"), callback_data=Dashboard(period=p).pack()
        )
        for p in PERIODS
    ]
    return keyboard(periods, [button(t, "admin-chart", Dashboard(period="chart").pack())], [back_to_admin(t)])


async def on_dashboard(
    query: CallbackQuery, t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices, period: str = "today"
) -> None:
    await show(query, await dashboard_text(t, pool, config, admin, period), dashboard_keyboard(t, period))


async def on_dashboard_menu(
    query: CallbackQuery, t: Translator, pool: asyncpg.Pool, config: Config, admin: AdminServices
) -> None:
    await on_dashboard(query, t, pool, config, admin)


async def on_dashboard_button(
    query: CallbackQuery,
    callback_data: Dashboard,
    t: Translator,
    pool: asyncpg.Pool,
    config: Config,
    admin: AdminServices,
    bot: Bot,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.period == "chart":
        await send_chart(query, t, pool, config, bot, callback_answer)
    elif callback_data.period in PERIODS:
        await on_dashboard(query, t, pool, config, admin, callback_data.period)
    else:
        callback_answer.text, callback_answer.show_alert = t("stale-button"), True


async def send_chart(
    query: CallbackQuery, t: Translator, pool: asyncpg.Pool, config: Config, bot: Bot, callback_answer: CallbackAnswer
) -> None:
    # Answered before drawing, so the admin's client stops its spinner at once.
    callback_answer.disabled = True
    await query.answer(t("admin-chart-drawing"))
    rows = await queries.admin_dashboard.daily_sales(pool, CHART_DAYS)
    days = [(row["day"], row["sales"], row["revenue"]) for row in rows]
    png = await render_sales_chart(days, config.shop.currency, t("admin-chart-title", count=CHART_DAYS))
    total = sum((sales for _, sales, _ in days), Decimal(0))
    cost = total - sum((revenue for _, _, revenue in days), Decimal(0))
    try:
        await bot.send_photo(
            query.from_user.id,
            BufferedInputFile(png, filename="sales.png"),
            caption=t(
                "admin-chart-caption",
                count=CHART_DAYS,
                amount=format_money(total, config.shop.currency),
                cost=format_money(cost, config.shop.currency),
            ),
        )
    except TelegramAPIError as exc:
        log.warning("could not send the sales chart: %s", exc.message)
        await bot.send_message(query.from_user.id, t("admin-chart-failed"))


def build_router(is_admin: Filter) -> Router:
    router = Router(name=__name__)
    router.callback_query.register(on_dashboard_menu, AdminMenu.filter(F.action == "dash"), is_admin)
    router.callback_query.register(on_dashboard_button, Dashboard.filter(), is_admin)
    return router
