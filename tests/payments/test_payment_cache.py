"""Payment lookups: Heleket is not asked again about a payment it already called final, a payment still
in progress is always asked about afresh, and a remembered answer never credits anything by itself."""

from __future__ import annotations

import time
from decimal import Decimal

from shopbot.config.schema import RedisConfig
from shopbot.config.secret import Secret
from shopbot.db.queries import queries
from tests.ledger.helpers import make_user
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal


def info_requests(shop: ShopUnderTest) -> int:
    assert shop.heleket is not None
    return sum(1 for call in shop.heleket.calls if call.path == "/v1/payment/info")


async def available(shop: ShopUnderTest, user_id: int) -> Decimal:
    return (await shop.shop.ledger.balance(user_id)).available


async def test_check_payment_asks_heleket_once_per_30_s_and_not_at_all_once_final(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.topups.lookup is not None
        user = await make_user(shop.shop.pool, 71)
        invoice = await shop.shop.topups.create(user, D("10"))
        shop.heleket.silence_webhooks()
        assert await shop.shop.topups.check(user, invoice.id) == "check"  # waiting for the payer
        shop.heleket.pay(invoice.order_id)
        # The waiting answer is remembered for 30 s: pressing again within them does not ask Heleket
        # (the webhook, which always asks, is what credits a payment at once).
        assert await shop.shop.topups.check(user, invoice.id) == "check"
        assert info_requests(shop) == 1
        shop.shop.topups.lookup.clock = lambda: time.time() + 31
        assert await shop.shop.topups.check(user, invoice.id) == "paid"
        assert await available(shop, user) == D("10")
        assert await shop.shop.topups.check(user, invoice.id) == "paid"
        assert info_requests(shop) == 2


async def test_a_final_answer_is_remembered_but_never_credits_by_itself(database_url: str, redis_url: str) -> None:
    async with running_shop(database_url, heleket=True, redis=RedisConfig(url=Secret(redis_url))) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        user = await make_user(shop.shop.pool, 72)
        invoice = await shop.shop.topups.create(user, D("10"))
        shop.heleket.silence_webhooks()
        shop.heleket.pay(invoice.order_id)
        # Our row disagrees with Heleket's invoice (the operator must look): nothing may be credited, and
        # the invoice stays open, so every reconciler pass and every "Check payment" looks at it again.
        await shop.shop.pool.execute("UPDATE invoices SET amount = 11 WHERE id = $1", invoice.id)
        for _ in range(3):
            assert await shop.shop.reconciler.reconcile_once() == {"mismatch": 1}
            assert await shop.shop.topups.check(user, invoice.id) == "check"
        assert info_requests(shop) == 1  # Heleket's final "paid" was asked for once
        assert await available(shop, user) == D("0")
        stored = await queries.invoices.invoice_by_id(shop.shop.pool, invoice.id)
        assert (stored["is_final"], stored["credited_amount"]) == (False, None)

        # Once the operator corrects the row, the remembered answer settles it, through the ledger, once.
        await shop.shop.pool.execute("UPDATE invoices SET amount = 10 WHERE id = $1", invoice.id)
        assert await shop.shop.reconciler.reconcile_once() == {"credited": 1}
        assert await shop.shop.topups.check(user, invoice.id) == "paid"
        assert await available(shop, user) == D("10")
        assert info_requests(shop) == 1
