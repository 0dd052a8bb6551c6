"""The admin area's buttons and typed-input states. Every prefix starts with `adm`; `adm_bc` is broadcast's."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup

BROADCAST_NEW = "adm_bc:new"  # handled by the broadcast flow


class AdminMenu(CallbackData, prefix="adm"):
    """home, dash, users, attention, maint, prices, promo."""

    action: str


class Dashboard(CallbackData, prefix="adm_dash"):
    period: str  # today, 7d, 30d; "chart" sends the chart


class UserAction(CallbackData, prefix="adm_u"):
    action: str  # show, adjust
    user_id: int


class Adjust(CallbackData, prefix="adm_adj"):
    step: str  # check (first confirmation), do (second), no
    token: str


class OrderAction(CallbackData, prefix="adm_o"):
    action: str  # retry, refund
    order_id: int


class MaintenanceAction(CallbackData, prefix="adm_m"):
    action: str  # on, off, text


class PriceAction(CallbackData, prefix="adm_p"):
    item: str  # star, 3, 6, 12, reset


class PromoAction(CallbackData, prefix="adm_pc"):
    action: str  # new, toggle, edit
    code_id: int  # 0 for new


class AdminFlow(StatesGroup):
    user_query = State()  # an id or @username to look up
    adjust_amount = State()
    adjust_reason = State()
    maintenance_text = State()
    price = State()
    promo_code = State()  # the one message that creates a promo code
    promo_limits = State()  # a code's new uses, uses per user and expiry
