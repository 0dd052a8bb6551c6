"""The inbox's group commit: concurrent webhooks share one statement and its commit, each answered only once its
event is committed; a repeat in the same statement is stored once; a failed statement fails each of its requests.
And the endpoint's right of way: the settler waits out a flood of webhooks, one step at a time."""

from __future__ import annotations

from decimal import Decimal

import anyio
import asyncpg
import pytest

from shopbot.payments.inbox import FLOOD_PER_WINDOW, Answering, InboxWriter
from shopbot.payments.settler import inbox_event
from tests.payments.helpers import signed, webhook_payload
from tests.shop_harness import running_shop


def event(n: int, status: str = "paid") -> tuple[str, str, bool, str, str]:
    payload = webhook_payload(f"topup-group-{n}", f"uuid-{n}", Decimal(5), status)
    return inbox_event({**payload, "sign": "x"})


async def stored_events(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT uuid, status FROM heleket_inbox ORDER BY uuid, status")
    return [(r["uuid"], r["status"]) for r in rows]


async def test_webhooks_arriving_while_a_statement_commits_are_stored_by_the_next_one_and_answered_after_it(
    pool: asyncpg.Pool,
) -> None:
    writer = InboxWriter(pool, writers=1)
    answered: list[tuple[int, str, bool]] = []
    blocker = await pool.acquire()
    try:
        # Another transaction holds event 0 uncommitted: the first statement waits on it, like a slow commit.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO heleket_inbox (uuid, status, is_final, order_id, payload) VALUES ($1, $2, $3, $4, $5::jsonb)",
            *event(0),
        )

        async def store(n: int, status: str = "paid") -> None:
            answered.append((n, status, await writer.store(event(n, status))))

        async with anyio.create_task_group() as group:
            group.start_soon(store, 0)
            while not await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ):
                await anyio.sleep(0.01)
            for n in range(1, 21):
                group.start_soon(store, n)
            group.start_soon(store, 7)  # a repeat, in the same statement as the first
            group.start_soon(store, 3, "paid_over")  # another event of the same invoice
            await anyio.wait_all_tasks_blocked()
            assert answered == []  # nobody is answered before its event is committed
            assert await stored_events(pool) == []
            await tx.rollback()  # the first statement goes on and stores event 0 itself
        assert writer.statements == 2  # event 0's, then one for the 22 that waited
        # Each event answered as stored once; the repeat of event 7 as a repeat.
        assert sorted(answered) == sorted(
            [(n, "paid", True) for n in range(21)] + [(7, "paid", False), (3, "paid_over", True)]
        )
    finally:
        await pool.release(blocker)
    expected = sorted([(f"uuid-{n}", "paid") for n in range(21)] + [("uuid-3", "paid_over")])
    assert await stored_events(pool) == expected


async def test_a_repeat_in_the_same_statement_is_stored_once_and_answered_as_a_repeat(pool: asyncpg.Pool) -> None:
    writer = InboxWriter(pool, writers=1)
    results: list[bool] = []
    blocker = await pool.acquire()
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute(
            "INSERT INTO heleket_inbox (uuid, status, is_final, order_id, payload) VALUES ($1, $2, $3, $4, $5::jsonb)",
            *event(0),
        )

        async def store(n: int) -> None:
            results.append(await writer.store(event(n)))

        async with anyio.create_task_group() as group:
            group.start_soon(store, 0)
            while not await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ):
                await anyio.sleep(0.01)
            group.start_soon(store, 1)
            group.start_soon(store, 1)
            await anyio.wait_all_tasks_blocked()
            await tx.rollback()
    finally:
        await pool.release(blocker)
    assert writer.statements == 2
    assert sorted(results) == [False, True, True]  # event 0 new, event 1 new once and a repeat once
    assert await stored_events(pool) == [("uuid-0", "paid"), ("uuid-1", "paid")]
    assert await writer.store(event(1)) is False  # and heard again later, still a repeat


async def test_a_statement_that_fails_fails_each_of_its_requests(pool: asyncpg.Pool) -> None:
    writer = InboxWriter(pool)
    broken = (*event(1)[:4], "not json")
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await writer.store(broken)
    assert await writer.store(event(2)) is True  # the next statement is not affected
    assert await stored_events(pool) == [("uuid-2", "paid")]


async def test_concurrent_webhooks_are_each_answered_once_stored_and_a_forged_one_alone_is_refused(
    database_url: str,
) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        pool = shop.shop.pool
        bodies = [signed(webhook_payload(f"topup-burst-{n}", f"uuid-burst-{n}", "5")) for n in range(40)]
        forged = bodies[5].replace(b'"amount":"5.00000000"', b'"amount":"500.00000000"', 1)
        answers: list[tuple[int, dict[str, object]]] = []

        async def post(body: bytes) -> None:
            answer = await shop.http.post("/webhook/heleket", content=body)
            answers.append((answer.status_code, answer.json()))

        async with anyio.create_task_group() as group:
            for body in [*bodies, bodies[3], forged, bodies[9]]:
                group.start_soon(post, body)
        assert sorted(status for status, _ in answers) == [200] * 42 + [401]
        assert [body for status, body in answers if status == 401] == [{"error": "bad_signature", "detail": ""}]
        stored = [body["stored"] for status, body in answers if status == 200]
        assert (stored.count("new"), stored.count("repeat")) == (40, 2)
        count = await pool.fetchval("SELECT count(*) FROM heleket_inbox WHERE uuid LIKE 'uuid-burst-%'")
        assert count == 40  # each answered event is in the inbox, once


async def test_a_flood_of_webhooks_holds_the_settler_back_but_lets_a_step_through_now_and_then() -> None:
    answering = Answering()
    assert await answering.quiet(0.05) is True  # nothing coming in: no wait
    stop = anyio.Event()

    async def flood() -> None:
        while not stop.is_set():
            for _ in range(FLOOD_PER_WINDOW):
                answering.arrived()
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        group.start_soon(flood)
        await anyio.sleep(0.02)
        passed = [await answering.quiet(0.02) for _ in range(3)]
        assert passed == [False, False, False]  # let through, one at a time, while the flood goes on
        stop.set()
    assert await answering.quiet(5.0) is True  # the flood is over: the settler goes on at once


async def test_an_ordinary_pace_of_webhooks_does_not_hold_the_settler_back() -> None:
    answering = Answering()
    for _ in range(FLOOD_PER_WINDOW // 3):
        answering.arrived()
    assert await answering.quiet(0.02) is True


async def test_the_answer_to_a_webhook_is_the_same_with_a_shared_statement(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        body = signed(webhook_payload("topup-one", "uuid-one", "5"))
        first = await shop.http.post("/webhook/heleket", content=body)
        again = await shop.http.post("/webhook/heleket", content=body)
        assert (first.status_code, first.json()) == (200, {"ok": True, "stored": "new"})
        assert (again.status_code, again.json()) == (200, {"ok": True, "stored": "repeat"})
