"""What the admin area works with, beyond the services every handler has: handlers get it as `admin`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from shopbot.bot.admin.margins import MarginBoard
from shopbot.bot.notices import OrderNotices
from shopbot.config.schema import Config
from shopbot.fulfilment.costs import TonRates
from shopbot.fulfilment.fragment import FragmentClient
from shopbot.fulfilment.products import Shopfront
from shopbot.fulfilment.settings import ShopSettings
from shopbot.fulfilment.wallet import WalletWatch

CircuitStates = Callable[[], Awaitable[dict[str, str]]]


async def _no_circuits() -> dict[str, str]:
    return {}


@dataclass
class AdminServices:
    settings: ShopSettings
    margins: MarginBoard  # price against cost per product (the Prices screen, the gauge)
    client: FragmentClient | None = None  # None: selling is off (nothing to verify, no wallet to lock)
    notices: OrderNotices | None = None  # tells a buyer about an admin's refund
    wallet_ton: Callable[[], Decimal | None] = lambda: None  # the last wallet reading
    circuits: CircuitStates = _no_circuits
    kyc: bool = False  # cookies matter only when purchases go through the shop's own Fragment account
    attention_after: float = 600.0  # a queued or paying order older than this needs attention


def circuit_states(breakers: dict[str, Any]) -> CircuitStates:
    """Each breaker's state, whether its `state` is a property, a method or a coroutine method."""

    async def states() -> dict[str, str]:
        found = {}
        for name, breaker in breakers.items():
            state = getattr(breaker, "state", "unknown")
            if callable(state):
                state = state()
            if inspect.isawaitable(state):
                state = await state
            found[name] = str(state)
        return found

    return states


def admin_services(
    config: Config,
    pool: asyncpg.Pool,
    settings: ShopSettings,
    rates: TonRates,
    shopfront: Shopfront,
    notices: OrderNotices,
    circuits: dict[str, Any],
    *,
    client: FragmentClient | None = None,
    wallet: WalletWatch | None = None,
) -> AdminServices:
    """The admin area's services over the shop's own parts (the settings already read)."""
    # The margin is of the price users are quoted now, whether an admin or the repricer set it.
    margins = MarginBoard(pool, rates, lambda: shopfront.prices)
    return AdminServices(
        settings,
        margins,
        client=client,
        notices=notices,
        wallet_ton=lambda: wallet.balance if wallet is not None else None,
        circuits=circuit_states(circuits),
        kyc=config.fragment.kyc,
    )
