"""The REST API's fixtures: a ledger with ANN's and BOB's movements, and a client of the API over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from shopbot.ledger.book import Ledger
from shopbot.ledger.model import MovementType, SystemAccount
from shopbot.web.api import api_routes
from tests.ledger.helpers import make_user
from tests.web.helpers import ANN, BOB, EVE, config, open_client


@pytest.fixture
async def ledger(pool: asyncpg.Pool) -> Ledger:
    """ANN: 12 top-ups of 1..12, a bonus, an order held then captured, another held then released."""
    for user in (ANN, BOB, EVE):
        await make_user(pool, user)
    ledger = Ledger(pool, "USD")
    for n in range(1, 13):
        await ledger.credit(
            user_id=ANN,
            amount=D(n),
            key=f"ann:{n}",
            type=MovementType.RECHARGE,
            reference=f"invoice:{n}",
            source=SystemAccount.HELEKET_CLEARING,
        )
    await ledger.credit(
        user_id=ANN,
        amount=D("0.5"),
        key="ann:bonus",
        type=MovementType.BONUS,
        reference="promo:1",
        source=SystemAccount.BONUSES,
    )
    await ledger.hold(user_id=ANN, amount=D("3.25"), key="o1:hold", reference="order:1")
    await ledger.capture(user_id=ANN, amount=D("3.25"), key="o1:capture", reference="order:1", cost=D("3"))
    await ledger.hold(user_id=ANN, amount=D("2"), key="o2:hold", reference="order:2")
    await ledger.release(user_id=ANN, amount=D("1"), key="o2:release", reference="order:2")
    await ledger.credit(
        user_id=BOB,
        amount=D("7"),
        key="bob:1",
        type=MovementType.RECHARGE,
        reference="invoice:100",
        source=SystemAccount.HELEKET_CLEARING,
    )
    return ledger


@pytest.fixture
async def client(pool: asyncpg.Pool, ledger: Ledger) -> AsyncIterator[httpx.AsyncClient]:
    async with await open_client(Starlette(routes=api_routes(config(), pool, ledger))) as client:
        yield client
