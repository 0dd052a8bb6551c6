"""Helpers for tests that sell Stars and Premium against the Fragment emulator."""

from __future__ import annotations

from decimal import Decimal

import anyio

from shopbot.fulfilment.orders import Order
from shopbot.ledger import MovementType, SystemAccount
from tests.ledger.helpers import make_user
from tests.shop_harness import ShopUnderTest

TON = 10**9


async def funded_buyer(shop: ShopUnderTest, user_id: int, amount: str = "100") -> int:
    """A user with money on their shop balance (and a chat with the bot)."""
    shop.telegram.add_user(user_id, first_name=f"Buyer{user_id}")
    await make_user(shop.shop.pool, user_id, f"Buyer{user_id}")
    await shop.shop.ledger.credit(
        user_id=user_id,
        amount=Decimal(amount),
        key=f"seed:{user_id}",
        type=MovementType.BONUS,
        reference="test",
        source=SystemAccount.BONUSES,
    )
    return user_id


def fund_wallet(shop: ShopUnderTest, ton: int = 100) -> str:
    assert shop.fragment is not None and shop.shop.fulfilment.client is not None
    address = shop.shop.fulfilment.client.address
    shop.fragment.fund(address, ton * TON)
    return address


async def wait_final(shop: ShopUnderTest, order_id: int, timeout: float = 20) -> Order:
    """The order once it is completed or refunded."""
    with anyio.fail_after(timeout):
        while True:
            order = await shop.shop.fulfilment.orders.get(order_id)
            assert order is not None
            if order.state in ("completed", "refunded"):
                return order
            await anyio.sleep(0.05)


async def movements_of(shop: ShopUnderTest, order_id: int) -> list[str]:
    rows = await shop.shop.pool.fetch(
        "SELECT idempotency_key FROM movements WHERE reference = $1 ORDER BY id", f"order:{order_id}"
    )
    return [row["idempotency_key"].rsplit(":", 1)[1] for row in rows]
