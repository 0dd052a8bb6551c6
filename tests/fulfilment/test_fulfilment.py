"""Selling Stars and Premium through the unmodified fragment-api-lib against the Fragment emulator."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from shopbot.config.schema import CircuitBreakerConfig
from shopbot.errors import Refused
from shopbot.fulfilment.wallet import WalletWatch
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from tests.fulfilment.helpers import fund_wallet, funded_buyer, movements_of, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal


# Signed payments valid for seconds, not minutes: a refused or failed order is refunded only once no payment
# signed for it can land, and these tests should not wait two minutes for that.
QUICK_PAYMENTS = {"payment_ttl_seconds": 5, "landing_margin_seconds": 1.0}


@pytest.fixture
async def shop(database_url: str):  # type: ignore[no-untyped-def]
    emulator = FragmentEmulator()
    emulator.add_user("best_friend", "Best Friend")
    async with running_shop(database_url, fragment=emulator, fragment_keys=QUICK_PAYMENTS) as shop:
        fund_wallet(shop)
        yield shop


async def test_stars_for_another_user_end_to_end(shop: ShopUnderTest) -> None:
    buyer = await funded_buyer(shop, 501, "10")
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "@best_friend")
    assert (quote.recipient, quote.recipient_name, quote.price) == ("best_friend", "Best Friend", D("2.00"))
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    done = await wait_final(shop, order.id)
    assert done.state == "completed"
    assert await movements_of(shop, order.id) == ["hold", "capture"]
    assert shop.fragment is not None
    payments = shop.fragment.payments_for(str(done.fragment_order_id))
    assert len(payments) == 1 and payments[0].outcome == "success"
    balance = await shop.shop.ledger.balance(buyer)
    assert (balance.available, balance.held) == (D("8.00"), D("0"))
    notice = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == buyer)
    assert "Delivered: 100 Telegram Stars for @best_friend" in notice.params["text"]
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_premium_end_to_end(shop: ShopUnderTest) -> None:
    buyer = await funded_buyer(shop, 502, "50")
    quote = await shop.shop.fulfilment.shopfront.quote("premium", 6, "best_friend")
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    assert (await wait_final(shop, order.id)).state == "completed"
    assert await movements_of(shop, order.id) == ["hold", "capture"]
    assert (await shop.shop.ledger.balance(buyer)).available == D("50") - D("19.99")


async def test_an_unknown_recipient_is_refused_before_any_money_is_held(shop: ShopUnderTest) -> None:
    buyer = await funded_buyer(shop, 503, "10")
    with pytest.raises(Refused, match="knows no Telegram user @nobody_here"):
        await shop.shop.fulfilment.shopfront.quote("stars", 50, "@nobody_here")
    with pytest.raises(Refused, match="5 to 32"):
        await shop.shop.fulfilment.shopfront.quote("stars", 50, "@abc")
    assert (await shop.shop.ledger.balance(buyer)).available == D("10")


@pytest.mark.parametrize("scenario", ["recipient_gone", "wallet_empty", "order_expired"])
async def test_definite_failures_refund_exactly_once(shop: ShopUnderTest, scenario: str) -> None:
    assert shop.fragment is not None
    buyer = await funded_buyer(shop, 504, "10")
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
    if scenario == "recipient_gone":
        shop.fragment.fail_next("create_order", "USER_NOT_FOUND")
    elif scenario == "wallet_empty":
        shop.fragment.set_balance(shop.shop.fulfilment.client.address, 1000)  # type: ignore[union-attr]
    else:
        shop.fragment.fail_next("submit", "ORDER_EXPIRED")
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    done = await wait_final(shop, order.id)
    assert done.state == "refunded"
    assert await movements_of(shop, order.id) == ["hold", "release"]
    assert shop.fragment.payments == []
    balance = await shop.shop.ledger.balance(buyer)
    assert (balance.available, balance.held) == (D("10"), D("0"))
    notice = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == buyer)
    assert "was refunded" in notice.params["text"] and "2.00 USD is back" in notice.params["text"]
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_an_ambiguous_payment_is_verified_never_paid_twice(shop: ShopUnderTest) -> None:
    assert shop.fragment is not None
    buyer = await funded_buyer(shop, 505, "10")
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
    shop.fragment.ambiguous_next(settle="success", after=1.0)
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    with anyio.fail_after(10):
        while (current := await shop.shop.fulfilment.orders.get(order.id)) and current.state != "verifying":
            await anyio.sleep(0.05)
    done = await wait_final(shop, order.id, timeout=30)
    assert done.state == "completed"
    assert len(shop.fragment.payments) == 1


async def test_an_ambiguous_payment_that_failed_is_refunded_after_verification(shop: ShopUnderTest) -> None:
    assert shop.fragment is not None
    buyer = await funded_buyer(shop, 506, "10")
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
    shop.fragment.ambiguous_next(settle="failed", after=1.0)
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    done = await wait_final(shop, order.id, timeout=30)
    assert done.state == "refunded"
    assert (await shop.shop.ledger.balance(buyer)).available == D("10")


async def test_a_service_outage_delays_and_never_refunds(database_url: str) -> None:
    emulator = FragmentEmulator()
    emulator.add_user("best_friend", "Best Friend")
    breaker = CircuitBreakerConfig(failure_threshold=2, timeout=60, success_threshold=1)
    async with running_shop(database_url, fragment=emulator, circuit_breaker=breaker) as shop:
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 507, "10")
        quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
        emulator.fail_next("create_order", status=503, times=6)
        order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
        notice = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == buyer, timeout=30
        )
        assert "is delayed" in notice.params["text"]
        assert await shop.shop.fulfilment.breaker.state() == "open"
        current = await shop.shop.fulfilment.orders.get(order.id)
        assert current is not None and current.state == "queued"
        assert (await shop.http.get("/health/detailed")).json()["circuits"]["fragment"] == "open"
        assert (await shop.shop.ledger.balance(buyer)).held == D("2.00")


async def test_fifty_users_ordering_at_once_are_each_paid_once_in_batches_one_payment_at_a_time(
    shop: ShopUnderTest,
) -> None:
    assert shop.fragment is not None
    shop.fragment.latency = 0.01
    buyers = [await funded_buyer(shop, 600 + n, "5") for n in range(50)]
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 50, "best_friend")
    placed = []

    async def buy(user: int) -> None:
        placed.append(await shop.shop.fulfilment.shopfront.place(user, quote))

    async with anyio.create_task_group() as group:
        for user in buyers:
            group.start_soon(buy, user)
    finals = [await wait_final(shop, order.id, timeout=120) for order in placed]
    assert {order.state for order in finals} == {"completed"}
    payments = shop.fragment.payments
    # A v4r2 wallet without KYC pays up to 4 orders with one payment (4 messages), one payment after another.
    assert sorted(p.seqno for p in payments) == list(range(len(payments)))
    assert all(1 <= len(p.order_ids) <= 4 for p in payments) and len(payments) < 50
    assert sorted(i for p in payments for i in p.order_ids) == sorted(str(o.fragment_order_id) for o in finals)
    assert all(len(shop.fragment.payments_for(str(o.fragment_order_id))) == 1 for o in finals)
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_the_wallet_watch_alerts_once_per_drop(shop: ShopUnderTest) -> None:
    assert shop.fragment is not None and shop.shop.fulfilment.client is not None
    alerts: list[str] = []

    async def alert(text: str) -> None:
        alerts.append(text)

    client = shop.shop.fulfilment.client
    watch = WalletWatch(client, shop.lifecycle, shop.shop.metrics, alert, low=D("5"), interval=3600)
    address = client.address
    for balance_ton, expected_alerts in ((100, 0), (3, 1), (2, 1), (50, 1), (4, 2)):
        shop.fragment.set_balance(address, balance_ton * 10**9)
        assert await watch.check() == D(balance_ton)
        assert len(alerts) == expected_alerts
    assert "4.00 TON left" in alerts[-1]
    metrics = await shop.scrape()
    assert "shopbot_wallet_balance_ton 4.0" in metrics


async def test_metrics_after_a_purchase_show_sensible_values(shop: ShopUnderTest) -> None:
    buyer = await funded_buyer(shop, 508, "10")
    shop.telegram.send_text(buyer, "/start")
    await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == buyer)
    quote = await shop.shop.fulfilment.shopfront.quote("stars", 100, "best_friend")
    order = await shop.shop.fulfilment.shopfront.place(buyer, quote)
    await wait_final(shop, order.id)
    text = await shop.scrape()
    assert "telegram_bot_active_users 1.0" in text
    assert 'shopbot_orders_in_state{state="completed"} 1.0' in text
    assert 'shopbot_orders_in_state{state="queued"} 0.0' in text
    assert 'shopbot_orders_total{state="completed"} 1.0' in text
    assert "shopbot_ledger_movements 3.0" in text  # the test's bonus, the hold, the capture
    assert 'shopbot_circuit_open{service="fragment"} 0.0' in text
    assert "telegram_bot_response_time_seconds_count 1.0" in text
    assert "telegram_bot_messages_total 1.0" in text
