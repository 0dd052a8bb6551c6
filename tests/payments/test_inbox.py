"""Heleket webhooks through the durable inbox (issue 15, item 1): the endpoint stores the verified event and
answers, the settler credits after the answer. A crash between the two loses nothing, repeats and concurrent
settlers credit once, and a webhook Heleket does not bear out credits nothing."""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg
import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from shopbot.db.queries import queries
from shopbot.ledger.verify import verify_ledger
from shopbot.payments.settler import Settler
from tests.ledger.helpers import make_user
from tests.ops.real_shop import outside_world, write_serve_config
from tests.ops.serve_process import ServeProcess, run_cli
from tests.payments.helpers import inbox_drained, signed, webhook_payload
from tests.shop_harness import free_port, running_shop

D = Decimal
INFO = "/v1/payment/info"


async def seed_invoice(conn: asyncpg.Connection, order_id: str, user_id: int, amount: Decimal, uuid: str) -> None:
    """Our invoice row, as the top-up flow writes it, made more than a week ago: the reconciler leaves such
    invoices alone, so only the inbox can credit it."""
    await queries.users.upsert_user(conn, user_id, None, "Crash", None, "en", False)
    await conn.execute(
        "INSERT INTO invoices (order_id, user_id, amount, currency, uuid, status, expires_at, created_at) "
        "VALUES ($1, $2, $3, 'USD', $4, 'check', now() + interval '1 hour', now() - interval '8 days')",
        order_id,
        user_id,
        amount,
        uuid,
    )


async def inbox(conn: asyncpg.Connection) -> list[tuple[str, str | None, int]]:
    rows = await conn.fetch("SELECT state, outcome, attempts FROM heleket_inbox ORDER BY id")
    return [(r["state"], r["outcome"], r["attempts"]) for r in rows]


async def test_a_shop_killed_after_the_answer_and_before_the_credit_credits_once_when_started_again(
    database_url: str, tmp_path: Path
) -> None:
    asked = anyio.Event()

    def watch(app: ASGIApp) -> ASGIApp:
        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == INFO:
                asked.set()
            await app(scope, receive, send)

        return watched

    async with outside_world(heleket_middleware=watch) as world:
        web_port = free_port()
        config = write_serve_config(
            tmp_path / "shopbot.toml",
            world,
            database_url,
            web_port=web_port,
            public_url=f"http://127.0.0.1:{web_port}",
            poll_seconds=3600,
        )
        paid = world.heleket.open_invoice("topup-crash-1", D("10"))
        world.heleket.pay("topup-crash-1")
        unpaid = world.heleket.open_invoice("topup-crash-2", D("4"))  # its `paid` webhook is not Heleket's word
        conn = await asyncpg.connect(database_url)
        shop = ServeProcess(config)
        try:
            await shop.wait_ready()
            await seed_invoice(conn, "topup-crash-1", 801, D("10"), paid.uuid)
            await seed_invoice(conn, "topup-crash-2", 802, D("4"), unpaid.uuid)
            body = signed(webhook_payload("topup-crash-1", paid.uuid, "10"))
            world.heleket.set_latency(INFO, 30.0)  # Heleket is slow to confirm: the kill lands before the credit
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{web_port}", trust_env=False) as http:
                answer = await http.post("/webhook/heleket", content=body)
                assert (answer.status_code, answer.json()) == (200, {"ok": True, "stored": "new"})
                with anyio.fail_after(10):
                    await asked.wait()  # the settler claimed the event and is asking Heleket
                shop.process.send_signal(signal.SIGKILL)
                assert await shop.wait_exit(timeout=10) == -signal.SIGKILL
                # Answered, not credited: the event waits in the inbox, its claim gone with the dead connection.
                assert await conn.fetchval("SELECT count(*) FROM movements") == 0
                with anyio.fail_after(10):
                    while (
                        await conn.fetchval(
                            "SELECT count(*) FROM heleket_inbox WHERE state = 'pending' "
                            "AND id IN (SELECT id FROM heleket_inbox FOR UPDATE SKIP LOCKED)"
                        )
                        != 1
                    ):
                        await anyio.sleep(0.05)
                assert await inbox(conn) == [("pending", None, 0)]

                world.heleket.set_latency(INFO, 0.05)
                shop = ServeProcess(config)
                await shop.wait_ready()  # no new webhook: the sweep finds the stored one
                with anyio.fail_after(20):
                    while (await inbox(conn))[0][0] == "pending":
                        await anyio.sleep(0.05)
                assert await inbox(conn) == [("settled", "credited", 1)]

                # Heleket's retry of the same webhook, and a signed `paid` Heleket does not bear out.
                assert (await http.post("/webhook/heleket", content=body)).json() == {"ok": True, "stored": "repeat"}
                forged = signed(webhook_payload("topup-crash-2", unpaid.uuid, "4"))
                assert (await http.post("/webhook/heleket", content=forged)).status_code == 200
                with anyio.fail_after(20):
                    while (await inbox(conn))[-1][0] == "pending":
                        await anyio.sleep(0.05)
            assert await inbox(conn) == [("settled", "credited", 1), ("refused", "unconfirmed", 1)]
            balances = await conn.fetch(
                "SELECT user_id, balance FROM accounts WHERE kind = 'user' AND user_id IN (801, 802) ORDER BY user_id"
            )
            assert [(r["user_id"], r["balance"]) for r in balances if r["balance"]] == [(801, D("10"))]
            assert await conn.fetchval("SELECT count(*) FROM movements WHERE idempotency_key LIKE 'invoice:%'") == 1
            events = await conn.fetch("SELECT status, is_final, source FROM invoice_events ORDER BY id")
            # The paid invoice's event, and the state Heleket gave for the other (`check`): not the webhook's `paid`.
            assert [tuple(r) for r in events] == [("paid", True, "webhook"), ("check", False, "webhook")]
            shop.signal(signal.SIGTERM)
            assert await shop.wait_exit(timeout=15) == 0
            verify = run_cli("--config", str(config), "ledger", "verify", cwd=tmp_path)
            assert verify.returncode == 0, verify.stdout + verify.stderr
        finally:
            shop.kill()
            await conn.close()


async def test_duplicates_and_concurrent_settlers_credit_each_event_once(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        shop.heleket.set_latency(INFO, 0.05)
        pool = shop.shop.pool
        users = [await make_user(pool, 900 + n) for n in range(10)]
        bodies: list[bytes] = []
        expected = {user: D(0) for user in users}
        for n in range(200):
            user = users[n % len(users)]
            amount = D(1 + n % 5)
            order_id = f"topup-many-{n}"
            invoice = shop.heleket.open_invoice(order_id, amount)
            shop.heleket.pay(order_id)
            await pool.execute(
                "INSERT INTO invoices (order_id, user_id, amount, currency, uuid, status, expires_at) "
                "VALUES ($1, $2, $3, 'USD', $4, 'check', now() + interval '1 hour')",
                order_id,
                user,
                amount,
                invoice.uuid,
            )
            bodies.append(signed(webhook_payload(order_id, invoice.uuid, amount)))
            expected[user] += amount
        # Three more settlers on the same inbox besides the shop's own (another instance's, say).
        reconciler = shop.shop.reconciler
        others = [
            Settler(pool, database_url, reconciler.settlement, reconciler.lookup, shop.lifecycle, shop.shop.metrics)
            for _ in range(3)
        ]
        statuses: list[int] = []
        limit = anyio.Semaphore(16)

        def notices() -> list[object]:
            return [c for c in shop.telegram.calls if c.method == "sendMessage" and "arrived" in str(c.params["text"])]

        async def deliver(body: bytes) -> None:
            async with limit:
                statuses.append((await shop.http.post("/webhook/heleket", content=body)).status_code)

        async with anyio.create_task_group() as group:
            for settler in others:
                await group.start(settler.run)
            with anyio.fail_after(60):
                async with anyio.create_task_group() as senders:
                    for body in bodies * 3:  # each webhook and two repeats
                        senders.start_soon(deliver, body)
                await inbox_drained(pool)
                while len(notices()) < 200:  # sent after each claim's commit
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()
        assert statuses == [200] * 600
        rows = await pool.fetch("SELECT state, outcome, attempts, count(*) AS n FROM heleket_inbox GROUP BY 1, 2, 3")
        # One row per event, each settled by exactly one attempt of one settler.
        assert [(r["state"], r["outcome"], r["attempts"], r["n"]) for r in rows] == [("settled", "credited", 1, 200)]
        for user, amount in expected.items():
            assert (await shop.shop.ledger.balance(user)).available == amount
        assert await pool.fetchval("SELECT count(*) FROM movements") == 200
        assert len(notices()) == 200  # one per credit
        report = await verify_ledger(pool)
        assert report.ok, report.problems


async def test_webhooks_answered_together_are_all_in_the_inbox_when_the_shop_is_killed_right_after(
    database_url: str, tmp_path: Path
) -> None:
    async with outside_world() as world:
        web_port = free_port()
        config = write_serve_config(
            tmp_path / "shopbot.toml",
            world,
            database_url,
            web_port=web_port,
            public_url=f"http://127.0.0.1:{web_port}",
            poll_seconds=3600,
        )
        shop = ServeProcess(config)
        conn = await asyncpg.connect(database_url)
        try:
            await shop.wait_ready()
            bodies = [signed(webhook_payload(f"topup-kill-{n}", f"uuid-kill-{n}", "3")) for n in range(40)]
            statuses: list[int] = []
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{web_port}", limits=limits, trust_env=False
            ) as http:

                async def post(body: bytes) -> None:
                    statuses.append((await http.post("/webhook/heleket", content=body)).status_code)

                async with anyio.create_task_group() as group:
                    for body in bodies:  # concurrent: they share statements
                        group.start_soon(post, body)
            shop.process.send_signal(signal.SIGKILL)  # at once: nothing after the answers gets to run
            assert await shop.wait_exit(timeout=10) == -signal.SIGKILL
            assert statuses == [200] * 40
            stored = await conn.fetchval("SELECT count(*) FROM heleket_inbox WHERE uuid LIKE 'uuid-kill-%'")
            assert stored == 40  # each event answered 200 was committed before its answer
        finally:
            shop.kill()
            await conn.close()
