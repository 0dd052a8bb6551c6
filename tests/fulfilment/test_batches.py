"""Batched payments (issue 15): the worker claims the due queued orders together and pays them with ONE signed
payment, stored on every order of the batch before it is submitted; each order still completes or is refunded on
its own. Against the Fragment emulator over HTTP (its chain landing each payment a moment after it is accepted)
and a real database; the books balance after each test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from fragment_api_lib.v3.wallet import MAX_MESSAGES

from shopbot.config.load import ConfigError, load_config
from shopbot.config.schema import WALLET_MESSAGES, FragmentConfig
from shopbot.db.queries import queries
from shopbot.fulfilment.orders import Order
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from tests.fulfilment.helpers import fund_wallet, funded_buyer, movements_of, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
# Payments valid for seconds, so waiting until none can land takes seconds; a W5 wallet carries 255 orders.
KEYS: dict[str, object] = {"payment_ttl_seconds": 8, "landing_margin_seconds": 1.0, "wallet_type": "v5r1"}
LANDING = 0.5  # seconds the emulated chain takes to land an accepted payment


def emulator() -> FragmentEmulator:
    fragment = FragmentEmulator(landing_delay=LANDING)
    fragment.add_user("best_friend", "Best Friend")
    return fragment


@contextlib.asynccontextmanager
async def worker_held(shop: ShopUnderTest) -> AsyncIterator[None]:
    """The wallet lock taken from under the worker: orders placed meanwhile queue up, and are claimed together
    once it is let go."""
    client = shop.shop.fulfilment.client
    assert client is not None
    async with shop.shop.pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended('shopbot-wallet:' || $1, 0))", client.address)
        try:
            yield
        finally:
            await conn.execute("SELECT pg_advisory_unlock_all()")


async def place(shop: ShopUnderTest, count: int, first_user: int, stars: int = 50) -> list[Order]:
    quote = await shop.shop.fulfilment.shopfront.quote("stars", stars, "best_friend")
    return [
        await shop.shop.fulfilment.shopfront.place(await funded_buyer(shop, first_user + n, "5"), quote)
        for n in range(count)
    ]


async def finals(shop: ShopUnderTest, placed: list[Order], timeout: float = 30) -> list[Order]:
    return [await wait_final(shop, order.id, timeout=timeout) for order in placed]


async def paid_once_each(shop: ShopUnderTest, done: list[Order]) -> None:
    """Every completed order's Fragment order paid exactly once, with a capture; the books balance."""
    assert shop.fragment is not None
    for order in done:
        if order.state == "completed":
            assert len(shop.fragment.payments_for(str(order.fragment_order_id))) == 1
            assert await movements_of(shop, order.id) == ["hold", "capture"]
        else:
            assert await movements_of(shop, order.id) == ["hold", "release"]
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_batch_of_queued_orders_is_paid_with_one_payment(database_url: str) -> None:
    fragment = emulator()
    # Each order costs 0.2244 TON; the batch 1.34 TON: the library's cap is per order, not per payment.
    async with running_shop(database_url, fragment=fragment, fragment_keys={**KEYS, "max_ton_per_order": 0.5}) as shop:
        fund_wallet(shop)
        async with worker_held(shop):
            placed = await place(shop, 6, 1100)
        done = await finals(shop, placed)
        assert {order.state for order in done} == {"completed"}
        [payment] = fragment.payments
        fragment_ids = [str(order.fragment_order_id) for order in done]
        assert sorted(payment.order_ids) == sorted(fragment_ids) and payment.amount_nano > D("0.5") * 10**9
        assert len(fragment.received) == 1  # one signed payment ever left the shop
        # One signed payment, stored on every order of the batch: it names each of them.
        assert {order.prepared["normalized_hash"] for order in done if order.prepared} == {payment.normalized_hash}
        assert all(sorted(order.prepared["orders"]) == sorted(fragment_ids) for order in done if order.prepared)
        assert len({order.prepared_until for order in done}) == 1
        rows = await shop.shop.pool.fetch("SELECT txid FROM orders WHERE id = ANY($1)", [o.id for o in placed])
        assert {row["txid"] for row in rows} == {payment.transaction_hash}
        for order in done:
            assert (await shop.shop.ledger.balance(order.user_id)).available == D("4.00")
        await paid_once_each(shop, done)


async def test_one_by_one_when_batch_orders_is_1(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys={**KEYS, "batch_orders": 1}) as shop:
        fund_wallet(shop)
        async with worker_held(shop):
            placed = await place(shop, 3, 1200)
        done = await finals(shop, placed)
        assert {order.state for order in done} == {"completed"}
        assert [len(p.order_ids) for p in fragment.payments] == [1, 1, 1]
        assert [p.seqno for p in fragment.payments] == [0, 1, 2]
        await paid_once_each(shop, done)


async def test_an_order_refused_at_create_is_refunded_and_the_others_are_paid_together(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        async with worker_held(shop):
            placed = await place(shop, 4, 1300)
            fragment.fail_next("create_order", "USER_NOT_FOUND")  # the first order claimed: the lowest id
        done = await finals(shop, placed)
        assert [order.state for order in done] == ["refunded", "completed", "completed", "completed"]
        assert done[0].refund_reason == "refund-reason-no-recipient" and done[0].fragment_order_id is None
        [payment] = fragment.payments
        assert sorted(payment.order_ids) == sorted(str(order.fragment_order_id) for order in done[1:])
        assert (await shop.shop.ledger.balance(done[0].user_id)).available == D("5.00")
        await paid_once_each(shop, done)


async def test_an_ambiguous_answer_verifies_every_order_and_each_completes_once(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        # The payment goes out, but the answer is TRANSFER_AMBIGUOUS and its orders stay processing a while.
        fragment.ambiguous_next(after=2.0)
        async with worker_held(shop):
            placed = await place(shop, 5, 1400)
        with anyio.fail_after(20):
            while {(await shop.shop.fulfilment.orders.get(o.id)).state for o in placed} != {"verifying"}:  # type: ignore[union-attr]
                await anyio.sleep(0.05)
        done = await finals(shop, placed)
        assert {order.state for order in done} == {"completed"}
        [payment] = fragment.payments
        assert len(payment.order_ids) == 5 and payment.outcome == "success"
        assert len(fragment.received) == 1  # verified, never signed anew
        await paid_once_each(shop, done)


async def test_an_answer_lost_after_landing_verifies_every_order(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        fragment.drop_next("submit", after_processing=True, times=7)  # every answer of the library's retries
        async with worker_held(shop):
            placed = await place(shop, 4, 1500)
        done = await finals(shop, placed, timeout=90)
        assert {order.state for order in done} == {"completed"}
        [payment] = fragment.payments
        assert len(payment.order_ids) == 4
        assert len(fragment.received) == 1
        await paid_once_each(shop, done)


async def test_a_definite_refusal_refunds_each_order_once_nothing_can_land(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        fragment.fail_next("submit", "INSUFFICIENT_BALANCE")
        async with worker_held(shop):
            placed = await place(shop, 3, 1600)
        done = await finals(shop, placed, timeout=40)
        assert {(order.state, order.refund_reason) for order in done} == {("refunded", "refund-reason-no-funds")}
        assert fragment.payments == []
        for order in done:
            finished = await shop.shop.pool.fetchval("SELECT finished_at FROM orders WHERE id = $1", order.id)
            assert order.prepared_until is not None and finished >= order.prepared_until
            assert (await shop.shop.ledger.balance(order.user_id)).available == D("5.00")
        await paid_once_each(shop, done)


async def test_an_expired_order_is_refunded_and_the_others_of_its_batch_are_paid_afresh(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        # While the batch's payment is being signed (its wallet read held a moment), the first order's invoice
        # expires on Fragment: the service refuses the whole payment with ORDER_EXPIRED.
        fragment.delay_next("wallet_info", 1.0, when=lambda: len(fragment.orders) == 4)
        async with worker_held(shop):
            placed = await place(shop, 4, 1700)
        with anyio.fail_after(20):
            while not fragment.waiting["wallet_info"]:
                await anyio.sleep(0.01)
        first = next(iter(fragment.orders))
        fragment.expire_orders(first)
        done = await finals(shop, placed, timeout=40)
        assert [(order.state, order.refund_reason) for order in done] == [("refunded", "refund-reason-expired")] + [
            ("completed", None)
        ] * 3
        assert done[0].fragment_order_id == first
        [payment] = fragment.payments  # the others, without the expired one
        assert sorted(payment.order_ids) == sorted(str(order.fragment_order_id) for order in done[1:])
        assert [len(signed.order_ids) for signed in fragment.received] == [4, 3]
        await paid_once_each(shop, done)


async def test_an_order_no_longer_ours_when_the_batch_is_stored_stops_the_payment(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        fragment.delay_next("wallet_info", 1.0, when=lambda: len(fragment.orders) == 3)
        async with worker_held(shop):
            placed = await place(shop, 3, 1800)
        with anyio.fail_after(20):
            while not fragment.waiting["wallet_info"]:
                await anyio.sleep(0.01)
        # An operator refunds the second order while the batch's payment is being signed.
        orders = shop.shop.fulfilment.orders
        refunded = await orders.refund(placed[1], "refund-reason-admin")
        assert refunded is not None
        done = await finals(shop, placed)
        assert [order.state for order in done] == ["completed", "refunded", "completed"]
        # Nothing that paid the refunded order was ever submitted; the others were signed afresh and paid.
        gone = str(next(o for o in fragment.orders.values() if o.idempotency_key == placed[1].idempotency_key).id)
        assert fragment.submitted_for(gone) == [] and fragment.orders[gone].status == "created"
        [payment] = fragment.payments
        assert sorted(payment.order_ids) == sorted(str(order.fragment_order_id) for order in (done[0], done[2]))
        await paid_once_each(shop, done)


async def test_a_payment_signed_again_inside_submit_is_stored_on_every_order_first(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        # Not sent; tried again 2 s later and told it can never land: signed again, with a later valid_until.
        fragment.fail_next("submit", "TRANSFER_NOT_SENT")
        fragment.fail_next("submit", "TRANSFER_NOT_SENT", resign=True)
        async with worker_held(shop):
            placed = await place(shop, 3, 1900)
        done = await finals(shop, placed)
        assert {order.state for order in done} == {"completed"}
        [payment] = fragment.payments
        first, second = fragment.received
        assert first.seqno == second.seqno == payment.seqno and payment.normalized_hash == second.normalized_hash
        assert {order.prepared["normalized_hash"] for order in done if order.prepared} == {payment.normalized_hash}
        await paid_once_each(shop, done)


async def test_a_batch_that_spent_its_time_creating_pays_what_it_made_and_leaves_the_rest(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=KEYS) as shop:
        fund_wallet(shop)
        worker = shop.shop.fulfilment.worker
        assert worker is not None
        async with worker_held(shop):
            placed = await place(shop, 5, 2000)
            rows = await queries.orders.claim_due_queued(shop.shop.pool, 10, 60)
            claimed = sorted((Order.from_row(row) for row in rows), key=lambda order: order.id)
            # Out of time (or the shop stopping) once two Fragment orders were made: those two are paid now.
            await worker.payer.pay(claimed, None, stopping=lambda: len(fragment.orders) >= 2)  # type: ignore[arg-type]
            assert [len(p.order_ids) for p in fragment.payments] == [2]
            states = [(await shop.shop.fulfilment.orders.get(o.id)).state for o in placed]  # type: ignore[union-attr]
            assert states == ["completed"] * 2 + ["queued"] * 3
        done = await finals(shop, placed)  # the worker, let go, pays the rest with the next payment
        assert {order.state for order in done} == {"completed"}
        assert [len(p.order_ids) for p in fragment.payments] == [2, 3]
        await paid_once_each(shop, done)


# --- how many orders a payment carries ---------------------------------------------------------------------------


def test_the_configs_message_limits_are_the_librarys() -> None:
    assert WALLET_MESSAGES == MAX_MESSAGES


@pytest.mark.parametrize(
    ("keys", "orders"),
    [
        ({}, 2),  # v4r2, KYC: a Fragment and a fee leg each
        ({"kyc": False}, 4),
        ({"wallet_type": "v5r1"}, 127),
        ({"wallet_type": "v5r1", "kyc": False}, 255),
        ({"wallet_type": "v5r1", "kyc": False, "batch_orders": 10}, 10),
        ({"batch_orders": 1}, 1),
    ],
)
def test_a_payment_carries_as_many_orders_as_the_wallet_sends_messages(keys: dict[str, object], orders: int) -> None:
    config = FragmentConfig(**keys)  # type: ignore[arg-type]
    assert config.orders_per_payment == orders


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", "Expected `int` >= 1"),
        ("-3", "Expected `int` >= 1"),
        ("256", "Expected `int` <= 255"),
        ('"lots"', "Invalid enum value 'lots'"),
        ("5", "5 is more than one payment can carry: a v4r2 wallet sends 4 messages at once, so at most 4 no-KYC"),
    ],
)
def test_batch_orders_is_checked(tmp_path: Path, value: str, problem: str) -> None:
    path = tmp_path / "shopbot.toml"
    path.write_text(f"[fragment]\nkyc = false\nbatch_orders = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert any(problem in line and "batch_orders" in line for line in caught.value.problems), caught.value.problems
