"""The payer at the edges (issue 13): a reinstalled database on a used wallet, a payment that lands after its
answer was lost and the service refused the retry, a payment the library signs again, a lost wallet lock,
an order the service answers with someone else's order, and an admin refund of an order the service has
seen paid. Each against the Fragment emulator over HTTP and a real database; the books balance after each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import anyio
import pytest

from shopbot.bot.admin.callbacks import OrderAction
from shopbot.config.schema import FragmentConfig
from shopbot.config.secret import Secret
from shopbot.db.server import with_database
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic
from tests.bot.test_admin import ADMIN, open_admin, press_menu, press_until_not_busy
from tests.conftest import create_database, drop_database
from tests.fulfilment.helpers import fund_wallet, funded_buyer, movements_of, wait_final
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
# Signed payments valid for seconds, not minutes, so waiting until none can land takes seconds. (A shop
# without these settings keeps its payments two minutes; the behaviour under test does not depend on it.)
QUICK = {"payment_ttl_seconds": 5, "landing_margin_seconds": 1.0}


def quick(**keys: object) -> dict[str, object]:
    known = set(FragmentConfig.__struct_fields__)
    return {key: value for key, value in {**QUICK, **keys}.items() if key in known}


@pytest.fixture
async def other_database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A second fresh, migrated database: the same shop reinstalled, or restored from an old backup."""
    name = await create_database(postgres_url, template_database)
    yield with_database(postgres_url, name)
    await drop_database(postgres_url, name)


def emulator() -> FragmentEmulator:
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    return fragment


async def until(condition: Callable[[], object], timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


async def buy(shop: ShopUnderTest, buyer: int, stars: int = 100) -> int:
    quote = await shop.shop.fulfilment.shopfront.quote("stars", stars, "best_friend")
    return (await shop.shop.fulfilment.shopfront.place(buyer, quote)).id


async def state_of(shop: ShopUnderTest, order_id: int) -> str:
    order = await shop.shop.fulfilment.orders.get(order_id)
    assert order is not None
    return order.state


async def test_a_fresh_database_on_a_used_wallet_makes_a_new_fragment_order_and_pays_it(
    database_url: str, other_database_url: str
) -> None:
    fragment = emulator()
    keys = quick(seed_phrase=Secret(" ".join(throwaway_mnemonic())))
    async with running_shop(database_url, fragment=fragment, fragment_keys=keys) as first:
        fund_wallet(first)
        old = await wait_final(first, await buy(first, await funded_buyer(first, 801, "10")))
        assert old.state == "completed"
    # Reinstalled on an empty database (ids start again at 1), same wallet, same Fragment service.
    async with running_shop(other_database_url, fragment=fragment, fragment_keys=keys) as shop:
        buyer = await funded_buyer(shop, 801, "10")
        order_id = await buy(shop, buyer)
        assert order_id == old.id
        done = await wait_final(shop, order_id)
        assert done.state == "completed"
        assert done.fragment_order_id != old.fragment_order_id  # a new Fragment order ...
        assert len(fragment.payments_for(str(done.fragment_order_id))) == 1  # ... paid by a new payment
        assert len(fragment.payments) == 2
        assert fragment.orders[str(done.fragment_order_id)].status == "success"
        balance = await shop.shop.ledger.balance(buyer)
        assert (balance.available, balance.held) == (D("8.00"), D("0"))
        notice = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == buyer)
        assert "Delivered: 100 Telegram Stars for @best_friend" in notice.params["text"]
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_an_answer_with_another_order_is_never_taken_for_ours(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(
        database_url, fragment=fragment, fragment_keys=quick(), telegram_keys={"admin_ids": (ADMIN,)}
    ) as shop:
        shop.telegram.add_user(ADMIN, first_name="Ops", language_code="en")
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 802, "10")
        paid = await wait_final(shop, await buy(shop, buyer))
        # A service mixing up keys answers the next order with that paid one: same product, amount, recipient.
        fragment.answer_next_create_with(str(paid.fragment_order_id))
        order_id = await buy(shop, buyer)
        done = await wait_final(shop, order_id)
        assert (done.state, done.refund_reason) == ("refunded", "refund-reason-mismatch")
        assert done.fragment_order_id is None
        assert len(fragment.payments) == 1  # nothing was signed for it
        assert await movements_of(shop, order_id) == ["hold", "release"]
        assert (await shop.shop.ledger.balance(buyer)).available == D("8.00")
        notice = await shop.telegram.wait_for_call(
            "sendMessage", predicate=lambda c: c.params["chat_id"] == buyer and "was refunded" in c.params["text"]
        )
        assert "answered with an order that was not this one" in notice.params["text"]
        alert = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == ADMIN)
        assert f"Order #{order_id}" in alert.params["text"] and "not ours" in alert.params["text"]
        assert (await verify_ledger(shop.shop.pool)).ok


@pytest.mark.parametrize("refusal", ["INSUFFICIENT_BALANCE", "ORDER_EXPIRED"])
async def test_a_refused_retry_of_a_payment_that_still_lands_is_never_refunded(database_url: str, refusal: str) -> None:
    fragment = emulator()
    # Long enough that the payment lands (below) well before the signed payment could have expired.
    async with running_shop(database_url, fragment=fragment, fragment_keys=quick(payment_ttl_seconds=20)) as shop:
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 803, "10")
        # The first submit goes out and the money leaves, but its answer is lost and the service still says
        # `created`; the library's retry of the same payment is refused outright.
        fragment.lands_late_next()
        fragment.drop_next("submit", after_processing=True)
        fragment.fail_next("submit", refusal)
        order_id = await buy(shop, buyer)
        with anyio.fail_after(30):
            while await state_of(shop, order_id) in ("queued", "paying"):
                await anyio.sleep(0.05)
        fragment_id = str((await shop.shop.fulfilment.orders.get(order_id)).fragment_order_id)  # type: ignore[union-attr]
        fragment.settle(fragment_id)  # the payment lands
        done = await wait_final(shop, order_id, timeout=60)
        assert done.state == "completed"
        assert await movements_of(shop, order_id) == ["hold", "capture"]
        assert len(fragment.payments_for(fragment_id)) == 1
        balance = await shop.shop.ledger.balance(buyer)
        assert (balance.available, balance.held) == (D("8.00"), D("0"))
        sent = [
            c.params["text"] for c in shop.telegram.calls if c.method == "sendMessage" and c.params["chat_id"] == buyer
        ]
        assert not any("was refunded" in text for text in sent)
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_refused_payment_is_refunded_once_it_can_no_longer_land(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=quick()) as shop:
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 804, "10")
        fragment.fail_next("submit", "INSUFFICIENT_BALANCE")
        order_id = await buy(shop, buyer)
        done = await wait_final(shop, order_id, timeout=40)
        assert (done.state, done.refund_reason) == ("refunded", "refund-reason-no-funds")
        assert done.prepared_until is not None and done.prepared is not None
        assert fragment.payments == []
        finished = await shop.shop.pool.fetchval("SELECT finished_at FROM orders WHERE id = $1", order_id)
        assert finished >= done.prepared_until  # never while the signed payment could land
        assert fragment.orders[str(done.fragment_order_id)].status == "created"  # refused, and not paid anew
        assert len(fragment.orders) == 1
        assert await movements_of(shop, order_id) == ["hold", "release"]
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_payment_signed_again_inside_submit_is_stored_before_it_is_submitted(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(database_url, fragment=fragment, fragment_keys=quick(payment_ttl_seconds=30)) as shop:
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 805, "10")
        # Not sent; the library tries the same payment again 2 s later and is told it can never land: sign it
        # again. The new signature (same seqno, a later valid_until) is a different payment from the first.
        fragment.fail_next("submit", "TRANSFER_NOT_SENT")
        fragment.fail_next("submit", "TRANSFER_NOT_SENT", resign=True)
        order_id = await buy(shop, buyer)
        done = await wait_final(shop, order_id)
        assert done.state == "completed" and done.prepared is not None
        fragment_id = str(done.fragment_order_id)
        [payment] = fragment.payments_for(fragment_id)
        first, second = fragment.submitted_for(fragment_id)
        assert first.seqno == second.seqno == payment.seqno  # signed again with the same seqno: one can land
        assert payment.normalized_hash == second.normalized_hash != first.normalized_hash
        assert done.prepared["normalized_hash"] == payment.normalized_hash  # the shop stored what paid
        assert await movements_of(shop, order_id) == ["hold", "capture"]
        assert (await shop.shop.ledger.balance(buyer)).available == D("8.00")
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_worker_that_lost_the_wallet_lock_signs_nothing_more(database_url: str) -> None:
    fragment = emulator()
    keys = quick(seed_phrase=Secret(" ".join(throwaway_mnemonic())), payment_ttl_seconds=30, request_timeout=15.0)
    async with running_shop(database_url, fragment=fragment, fragment_keys=keys) as first:
        fund_wallet(first)
        buyer = await funded_buyer(first, 806, "10")
        fragment.delay_next("create_order", 8)  # the service creates the order at once, answers late
        order_id = await buy(first, buyer)
        await until(lambda: fragment.orders)
        # The connection holding the wallet lock drops while the step is under way: the lock goes with it.
        pool = first.shop.pool
        [pid] = [
            r["pid"]
            for r in await pool.fetch(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ]
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        # Another instance takes the lock and resumes the order.
        async with running_shop(database_url, fragment=fragment, fragment_keys=keys) as second:
            done = await wait_final(second, order_id)
            await until(lambda: sum(c.endpoint == "create_order" for c in fragment.calls) >= 2)
        assert done.state == "completed"
        # The first worker got its late answer, took the lock again and pays the next order: whatever it did
        # with the first one is over by then.
        next_order = await buy(first, buyer)
        assert (await wait_final(first, next_order, timeout=40)).state == "completed"
        fragment_id = str(done.fragment_order_id)
        assert len(fragment.submitted_for(fragment_id)) == 1  # one signed payment for it ever left the shop
        assert len(fragment.payments_for(fragment_id)) == 1 and len(fragment.payments) == 2
        assert await movements_of(first, order_id) == ["hold", "capture"]
        assert (await first.shop.ledger.balance(buyer)).available == D("6.00")
        assert (await verify_ledger(pool)).ok


async def test_an_admin_refund_of_a_queued_order_the_service_has_paid_is_no_refund(database_url: str) -> None:
    fragment = emulator()
    async with running_shop(
        database_url, heleket=True, fragment=fragment, fragment_keys=quick(), telegram_keys={"admin_ids": (ADMIN,)}
    ) as shop:
        fund_wallet(shop)
        buyer = await funded_buyer(shop, 807, "10")
        client = shop.shop.fulfilment.client
        assert client is not None
        pool = shop.shop.pool
        async with pool.acquire() as conn:
            # The shop is stopped for a restore: its worker pays nothing meanwhile.
            await conn.execute("SELECT pg_advisory_lock(hashtextextended('shopbot-wallet:' || $1, 0))", client.address)
            order_id = await buy(shop, buyer)
            order = await shop.shop.fulfilment.orders.get(order_id)
            assert order is not None
            # Before the backup it was restored from was taken, its Fragment order had been paid ...
            created = await client.create_order("stars", "best_friend", 100, order.idempotency_key)
            await client.submit(await client.prepare([created]), [created])
            fragment_id = str(created["order"]["id"])
            # ... and the restored row has it queued again, with that Fragment order, waiting out a backoff.
            await pool.execute(
                "UPDATE orders SET fragment_order_id = $2, next_attempt_at = now() + interval '1 hour', "
                "created_at = now() - interval '20 minutes' WHERE id = $1",
                order_id,
                fragment_id,
            )
            await conn.execute("SELECT pg_advisory_unlock_all()")
        admin = await open_admin(shop)
        await press_menu(admin, "attention")
        listing = await admin.screen("admin-attention-title", count=1)
        answer = await press_until_not_busy(admin, listing, OrderAction(action="refund_ok", order_id=order_id).pack())
        assert answer == admin.t("admin-refund-paid", id=order_id)
        done = await wait_final(shop, order_id)  # the worker completes it instead
        assert done.state == "completed"
        assert await movements_of(shop, order_id) == ["hold", "capture"]
        assert len(fragment.payments) == 1
        assert (await shop.shop.ledger.balance(buyer)).available == D("8.00")
        assert (await verify_ledger(pool)).ok
        await admin.assert_every_press_answered()
