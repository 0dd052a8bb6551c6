"""The Fragment emulator's landing delay: an accepted payment is in flight for a while, as on the real chain.

Until it lands the wallet's seqno and balance stay put and its orders read `processing`; then the money leaves,
the seqno moves on and the orders read `success`. The submit is answered when it lands; the same external again
waits for the same landing, and another one for the same seqno is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import pytest
from fragment_api_lib.exceptions import FragmentAPIError
from fragment_api_lib.v3 import FragmentAPIv3

from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic

T = TypeVar("T")
RECIPIENT = "alice_stars"
TON = 10**9
DELAY = 1.0


@pytest.fixture
async def world() -> AsyncIterator[tuple[FragmentEmulator, FragmentAPIv3]]:
    emulator = FragmentEmulator(landing_delay=DELAY)
    emulator.add_user(RECIPIENT, "Alice Stars")
    async with anyio.create_task_group() as group:
        port = await group.start(serve_fragment_emulator, emulator)
        api = FragmentAPIv3(
            throwaway_mnemonic(),
            wallet_type="v5r1",
            base_url=f"http://127.0.0.1:{port}",
            trust={"max_ton_per_order": 50.0},
            timeout=10,
        )
        emulator.fund(api.address, 20 * TON)
        yield emulator, api
        group.cancel_scope.cancel()


async def call(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


async def failure(fn: Callable[[], object]) -> FragmentAPIError:
    with pytest.raises(FragmentAPIError) as caught:
        await anyio.to_thread.run_sync(fn)
    return caught.value


async def orders(api: FragmentAPIv3, count: int) -> list[dict[str, Any]]:
    return [await call(lambda: api.create_order("stars", RECIPIENT, 50, kyc=False)) for _ in range(count)]


def statuses(emulator: FragmentEmulator, created: list[dict[str, Any]]) -> set[str]:
    return {emulator.orders[c["order"]["id"]].status for c in created}


async def test_a_payment_is_in_flight_until_it_lands_then_the_seqno_money_and_orders_move(
    world: tuple[FragmentEmulator, FragmentAPIv3],
) -> None:
    emulator, api = world
    batch = await orders(api, 3)
    prepared = await call(lambda: api.prepare(batch))
    before = emulator.wallet(api.address)
    answers: list[dict[str, Any]] = []
    started = time.monotonic()
    async with anyio.create_task_group() as group:

        async def submit() -> None:
            answers.append(await call(lambda: api.submit(prepared, batch)))

        group.start_soon(submit)
        with anyio.fail_after(DELAY / 2):
            while not emulator.in_flight:
                await anyio.sleep(0.01)
        # Accepted: the orders are processing, but nothing has moved on the chain yet.
        [landing] = emulator.in_flight
        assert landing.order_ids == tuple(c["order"]["id"] for c in batch) and landing.seqno == before.seqno
        assert statuses(emulator, batch) == {"processing"}
        assert emulator.wallet(api.address) == before and emulator.payments == []
        info = await call(api.wallet_info)
        assert (info["seqno"], int(info["balance_nano"])) == (before.seqno, before.balance_nano)
    # Answered when it landed: one payment for the three orders, the seqno advanced, the orders paid.
    assert time.monotonic() - started >= DELAY
    [answer] = answers
    [payment] = emulator.payments
    assert answer["message"] == "Payment completed" and answer["transaction_hash"] == payment.transaction_hash
    assert [o["status"] for o in answer["orders"]] == ["success"] * 3
    assert payment.order_ids == landing.order_ids and payment.seqno == before.seqno
    after = emulator.wallet(api.address)
    assert (after.seqno, after.balance_nano) == (before.seqno + 1, before.balance_nano - payment.amount_nano)
    assert statuses(emulator, batch) == {"success"} and emulator.in_flight == []
    assert {emulator.orders[c["order"]["id"]].txid for c in batch} == {payment.transaction_hash}


async def test_the_same_payment_again_waits_for_the_same_landing_and_another_for_its_seqno_is_refused(
    world: tuple[FragmentEmulator, FragmentAPIv3],
) -> None:
    emulator, api = world
    [first, second] = await orders(api, 2)
    prepared = await call(lambda: api.prepare([first]))
    other = await call(lambda: api.prepare([second]))  # signed for the same seqno: the wallet has not moved
    assert other["seqno"] == prepared["seqno"]
    answers: list[dict[str, Any]] = []
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(lambda: _append(answers, call(lambda: api.submit(prepared))))
        with anyio.fail_after(DELAY / 2):
            while not emulator.in_flight:
                await anyio.sleep(0.01)
        # While the first is on its way, a different external for its seqno can never land.
        error = await failure(lambda: api.submit(other))
        assert error.error_code == "INVALID_SIGNED_MESSAGE" and "being applied" in error.details["reason"]
    assert len(answers) == 2 and all(a["orders"][0]["status"] == "success" for a in answers)
    [payment] = emulator.payments
    assert payment.order_ids == (first["order"]["id"],)
    # Landed: the seqno moved past the other one for good; the same external again is a duplicate.
    error = await failure(lambda: api.submit(other))
    assert error.error_code == "INVALID_SIGNED_MESSAGE" and "seqno" in error.details["reason"]
    assert (await call(lambda: api.submit(prepared)))["duplicate"]
    assert emulator.orders[second["order"]["id"]].status == "created" and len(emulator.payments) == 1


async def test_a_landing_happens_on_time_though_nobody_waits_for_its_answer(
    world: tuple[FragmentEmulator, FragmentAPIv3],
) -> None:
    emulator, api = world
    impatient = FragmentAPIv3(
        throwaway_mnemonic(), wallet_type="v5r1", base_url=api.base_url, trust=api.trust, timeout=DELAY / 4
    )
    emulator.fund(impatient.address, 5 * TON)
    [created] = await orders(impatient, 1)
    prepared = await call(lambda: impatient.prepare([created]))
    # The library stops waiting long before the landing, and sends the same external again 2 s later.
    answer = await call(lambda: impatient.submit(prepared))
    assert answer["duplicate"] and answer["orders"][0]["status"] == "success"
    [payment] = emulator.payments
    assert payment.order_ids == (created["order"]["id"],) and payment.outcome == "success"
    assert [call.status for call in emulator.calls if call.endpoint == "submit"] == [200, 200]  # one unread


async def test_a_payment_that_would_land_after_it_expired_never_lands(
    world: tuple[FragmentEmulator, FragmentAPIv3],
) -> None:
    emulator, api = world
    emulator.landing_delay = 3.0
    short = FragmentAPIv3(
        throwaway_mnemonic(), wallet_type="v4r2", base_url=api.base_url, trust=api.trust, external_ttl_seconds=2
    )
    emulator.fund(short.address, 5 * TON)
    [created] = await orders(short, 1)
    prepared = await call(lambda: short.prepare([created]))
    error = await failure(lambda: short.submit(prepared))  # no orders: the library may not sign it again
    assert (error.error_code, error.details["resign"]) == ("TRANSFER_NOT_SENT", True)
    assert emulator.payments == [] and emulator.wallet(short.address).seqno == 0
    assert emulator.orders[created["order"]["id"]].status == "created"


async def test_planned_outcomes_apply_when_the_payment_lands(world: tuple[FragmentEmulator, FragmentAPIv3]) -> None:
    emulator, api = world
    emulator.ambiguous_next(after=0.3)
    [created] = await orders(api, 1)
    error = await failure(lambda: api.pay_orders([created]))
    assert error.error_code == "TRANSFER_AMBIGUOUS" and len(emulator.payments) == 1
    await anyio.sleep(0.4)
    assert emulator.orders[created["order"]["id"]].status == "success"
    emulator.fail_next("submit", "TRANSFER_FAILED")
    [failed] = await orders(api, 1)
    seqno = emulator.wallet(api.address).seqno
    assert (await failure(lambda: api.pay_orders([failed]))).error_code == "TRANSFER_FAILED"
    assert emulator.wallet(api.address).seqno == seqno + 1 and len(emulator.payments) == 1


def test_a_landing_delay_is_never_negative() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        FragmentEmulator(landing_delay=-1)


async def _append(into: list[T], value: Any) -> None:
    into.append(await value)
