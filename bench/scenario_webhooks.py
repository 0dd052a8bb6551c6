"""Scenario 2, Heleket webhooks: signed final `paid` webhooks, one in ten a repeat of a recent one (often still
in flight), POSTed to /webhook/heleket at 8 and at 32 connections.

Against, in the same run, on the same HTTP stack (bench/ceiling_web.py):
(a) a static 200;
(b) the same signature check and one SQL statement crediting a balance: no ledger, no event record, no notice.
The shop believes no webhook on its own: each one it has not acted on yet costs one `payment/info` round trip
to the Heleket emulator (shopbot/sandbox/heleket.py), served in a process of its own (bench/heleket_server.py),
where every invoice the scenario seeds was opened and paid beforehand with the same order_id, uuid, amount and
currency, so Heleket confirms each one; that answer takes `info_latency` seconds (0 by default). The ceilings ask
no one. The shop sends each credited user a notice through a Telegram emulator in a process of its own
(bench/telegram_sink.py), as it would through Telegram. At the end every invoice that was paid is credited
exactly once with its amount, every balance is the sum of its invoices, the ledger verifies, each credit sent one
notice and was confirmed by a `payment/info` answer; in the ceiling's tables likewise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    HELEKET_KEY,
    PYTHON,
    TOKEN,
    BenchFailure,
    Measure,
    Postgres,
    ScenarioResult,
    check,
    check_books,
    percentile,
)
from bench.heleket_server import INFO, HeleketProcess
from bench.httpload import LoadResult, post_load
from bench.processes import Child, ShopProcess, free_port, write_shop_config
from bench.seed import seed_users
from shopbot.payments.signing import php_json_encode, sign_body

FIRST_USER = 6_000_001
PATH = "/webhook/heleket"
DUPLICATE_EVERY = 10  # every tenth webhook repeats one sent four places earlier
CURRENCY = "USD"


@dataclass
class WebhookSettings:
    connections: tuple[int, ...] = (8, 32)
    seconds: float = 8.0
    warmup: float = 1.5
    users: int = 2000
    shop_invoices: int = 20_000  # per connection count; a run ends early if they run out
    ceiling_invoices: int = 40_000
    info_latency: float = 0.0  # seconds the Heleket emulator takes to answer each payment/info


@dataclass
class Invoice:
    order_id: str
    uuid: str
    amount: Decimal
    user_id: int


def webhook(invoice: Invoice) -> bytes:
    """A final `paid` webhook in Heleket's field order, signed as Heleket signs it."""
    amount = f"{invoice.amount:.8f}"
    payload: dict[str, Any] = {
        "type": "payment",
        "uuid": invoice.uuid,
        "order_id": invoice.order_id,
        "amount": amount,
        "payment_amount": amount,
        "payment_amount_usd": f"{invoice.amount:.2f}",
        "merchant_amount": f"{invoice.amount * Decimal('0.98'):.8f}",
        "commission": "0.00000000",
        "is_final": True,
        "status": "paid",
        "from": None,
        "wallet_address_uuid": None,
        "network": "tron",
        "currency": "USD",
        "payer_currency": "USDT",
        "payer_amount": amount,
        "additional_data": None,
        "txid": "ab" * 32,
    }
    payload["sign"] = sign_body(php_json_encode(payload), HELEKET_KEY)
    return php_json_encode(payload)


def bodies_for(invoices: list[Invoice]) -> tuple[list[bytes], list[int]]:
    """The webhooks in sending order, and which invoice each one is for."""
    bodies: list[bytes] = []
    owners: list[int] = []
    for index, invoice in enumerate(invoices):
        bodies.append(webhook(invoice))
        owners.append(index)
        if len(bodies) % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and index >= 4:
            bodies.append(bodies[-5])
            owners.append(owners[-5])
    return bodies, owners


@dataclass
class Run:
    load: LoadResult
    answered: set[int]  # invoices with at least one webhook answered

    @property
    def p50(self) -> float:
        return percentile(self.load.latencies, 50) * 1000

    @property
    def p99(self) -> float:
        return percentile(self.load.latencies, 99) * 1000


async def send(port: int, bodies: list[bytes], owners: list[int], connections: int, settings: WebhookSettings) -> Run:
    """A warm-up, then the measured run on the webhooks after it; every answer must be a 200."""
    warm = max(connections * 20, 200)
    warmup = await post_load(port, PATH, bodies[:warm], connections=connections, seconds=settings.warmup)
    check(all(status == 200 for status in warmup.statuses), "a warm-up webhook was not answered 200")
    load = await post_load(port, PATH, bodies[warm:], connections=connections, seconds=settings.seconds)
    bad = [(status, body[:200]) for status, body in zip(load.statuses, load.bodies, strict=True) if status != 200]
    check(not bad, f"{len(bad)} webhooks were not answered 200, e.g. {bad[:3]}")
    answered = {owners[i] for i in warmup.sent} | {owners[warm + i] for i in load.sent}
    return Run(load, answered)


async def run_webhooks(
    postgres: Postgres, folder: Path, settings: WebhookSettings, context: dict[str, object], result: ScenarioResult
) -> None:
    static = await run_static(folder, settings)
    credit = await run_credit_ceiling(postgres, folder, settings)
    shop, confirmed = await run_shop(postgres, folder, settings)
    for connections in settings.connections:
        s, c, a = shop[connections], credit[connections], static[connections]
        target = " at 32" if connections == 32 else ""
        result.measures += [
            Measure(
                f"webhooks/s at {connections} connections",
                s.load.rate,
                "webhooks/s",
                c.load.rate,
                "(b) signature + one SQL statement",
                "share",
                "≥ 2,000/s and ≥ 70 % of (b)" if target else "≥ 70 % of (b)",
            ),
            Measure(
                f"webhooks/s at {connections} connections vs static 200",
                s.load.rate,
                "webhooks/s",
                a.load.rate,
                "(a) static 200",
                "share",
            ),
            Measure(
                f"p50 latency at {connections} connections",
                s.p50,
                "ms",
                c.p50,
                "(b) signature + one SQL statement",
                "multiple",
            ),
            Measure(
                f"p99 latency at {connections} connections",
                s.p99,
                "ms",
                c.p99,
                "(b) signature + one SQL statement",
                "multiple",
                "< 50 ms" if target else "",
            ),
        ]
        result.notes.append(
            f"{connections} connections: shop {s.load.count} webhooks in {s.load.elapsed:.1f} s; (b) {c.load.count} "
            f"in {c.load.elapsed:.1f} s (p99 {c.p99:.1f} ms); (a) {a.load.count} in {a.load.elapsed:.1f} s "
            f"(p50 {a.p50:.1f} ms, p99 {a.p99:.1f} ms)"
        )
    result.notes.append(
        f"shop: Heleket's payment/info answered {confirmed} times, each after "
        f"{settings.info_latency * 1000:.0f} ms (the emulator in a process of its own)"
    )
    result.checks += [
        "every webhook answered 200; each paid invoice credited exactly once with its amount, duplicates none",
        "every balance equals the sum of its credited invoices; ledger verify passes",
        "one top-up notice per credit reached Telegram; the ceiling's balances likewise exact",
        "each credit confirmed by Heleket's payment/info (the emulator), which answered every call 200",
    ]


async def run_static(folder: Path, settings: WebhookSettings) -> dict[int, Run]:
    port = free_port()
    server = Child("ceiling-static", [PYTHON, "-m", "bench.ceiling_web", "static", "--port", str(port)], folder)
    invoices = [Invoice(f"static-{n}", f"uuid-{n}", Decimal(5), FIRST_USER) for n in range(200)]
    bodies, _ = bodies_for(invoices)  # the static ceiling credits nobody
    runs = {}
    try:
        await server.wait_output("ceiling ready", 60)
        for connections in settings.connections:
            await post_load(port, PATH, bodies, connections=connections, seconds=settings.warmup, cycle=True)
            load = await post_load(
                port, PATH, bodies, connections=connections, seconds=settings.seconds, cycle=True, keep_bodies=False
            )
            check(all(status == 200 for status in load.statuses), "the static ceiling answered something but 200")
            runs[connections] = Run(load, set())
    finally:
        await server.stop()
    return runs


async def run_credit_ceiling(postgres: Postgres, folder: Path, settings: WebhookSettings) -> dict[int, Run]:
    dsn = await postgres.fresh_database("ceiling", migrate=False)
    port = free_port()
    server = Child(
        "ceiling-credit",
        [PYTHON, "-m", "bench.ceiling_web", "credit", "--port", str(port), "--dsn", dsn, "--key", HELEKET_KEY],
        folder,
    )
    runs = {}
    try:
        await server.wait_output("ceiling ready", 60)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO bench_balances (user_id) SELECT g FROM generate_series($1::bigint, $2) g",
                FIRST_USER,
                FIRST_USER + settings.users - 1,
            )
            sent: list[Invoice] = []
            for connections in settings.connections:
                rows = await conn.fetch(
                    "INSERT INTO bench_invoices (order_id, user_id, amount) "
                    "SELECT 'ceiling-' || $1::int || '-' || g, $2::bigint + g % $3, 1 + g % 50 "
                    "FROM generate_series(1, $4) g RETURNING order_id, user_id, amount",
                    connections,
                    FIRST_USER,
                    settings.users,
                    settings.ceiling_invoices,
                )
                invoices = [Invoice(r["order_id"], r["order_id"], r["amount"], r["user_id"]) for r in rows]
                bodies, owners = bodies_for(invoices)
                run = await send(port, bodies, owners, connections, settings)
                runs[connections] = run
                sent += [invoices[i] for i in run.answered]
            await check_ceiling_books(conn, sent)
        finally:
            await conn.close()
    finally:
        await server.stop()
        await postgres.drop_database(dsn)
    return runs


async def check_ceiling_books(conn: asyncpg.Connection, sent: list[Invoice]) -> None:
    paid = await conn.fetchval("SELECT count(*) FROM bench_paid")
    check(paid == len(sent), f"ceiling: {paid} invoices marked paid, {len(sent)} were sent")
    expected: dict[int, Decimal] = {}
    for invoice in sent:
        expected[invoice.user_id] = expected.get(invoice.user_id, Decimal(0)) + invoice.amount
    balances = {r["user_id"]: r["balance"] for r in await conn.fetch("SELECT user_id, balance FROM bench_balances")}
    wrong = [u for u, b in balances.items() if b != expected.get(u, Decimal(0))]
    check(not wrong, f"ceiling: {len(wrong)} balances are not the sum of their invoices")


def plan_shop_invoices(connections: int, settings: WebhookSettings) -> list[Invoice]:
    """The invoices of one connection count, in sending order; their uuids are the ones Heleket gives."""
    return [
        Invoice(f"bench-{connections}-{g}", "", Decimal(1 + g % 50), FIRST_USER + g % settings.users)
        for g in range(1, settings.shop_invoices + 1)
    ]


async def run_shop(postgres: Postgres, folder: Path, settings: WebhookSettings) -> tuple[dict[int, Run], int]:
    """The shop's runs, and how many payment/info calls Heleket answered for them."""
    dsn = await postgres.fresh_database("webhooks")
    planned = {connections: plan_shop_invoices(connections, settings) for connections in settings.connections}
    every_invoice = [invoice for invoices in planned.values() for invoice in invoices]
    heleket = HeleketProcess(
        folder, [(i.order_id, i.amount, CURRENCY) for i in every_invoice], info_latency=settings.info_latency
    )
    sink = Child(
        "telegram-sink",
        [PYTHON, "-m", "bench.telegram_sink", "--token", TOKEN, "--users", f"{FIRST_USER}:{settings.users}"],
        folder,
    )
    runs: dict[int, Run] = {}
    try:
        users = range(FIRST_USER, FIRST_USER + settings.users)
        await seed_users(dsn, users)
        telegram_port = int((await sink.wait_output("sink ready on", 60)).rsplit(" ", 1)[1])
        heleket_port, uuids = await heleket.wait_ready()
        for invoice in every_invoice:
            invoice.uuid = uuids[invoice.order_id]
        web_port = free_port()
        # The reconciler's one pass runs as the shop starts, before any invoice exists; then it sleeps an hour.
        # Were it to ask about a seeded invoice, Heleket would confirm it and check_shop_invoices would see an
        # invoice credited that no webhook was sent for.
        config = write_shop_config(
            folder,
            telegram_port=telegram_port,
            web_port=web_port,
            database_url=dsn,
            heleket_base=f"http://127.0.0.1:{heleket_port}",
        )
        shop = ShopProcess(config, folder, web_port)
        try:
            await shop.wait_ready()
            conn = await asyncpg.connect(dsn)
            try:
                for connections in settings.connections:
                    invoices = planned[connections]
                    await conn.execute(
                        "INSERT INTO invoices (order_id, user_id, amount, currency, uuid, status, expires_at) "
                        "SELECT o, u, a, $5, id, 'check', now() + interval '1 hour' "
                        "FROM unnest($1::text[], $2::bigint[], $3::numeric[], $4::text[]) AS t(o, u, a, id)",
                        [i.order_id for i in invoices],
                        [i.user_id for i in invoices],
                        [i.amount for i in invoices],
                        [i.uuid for i in invoices],
                        CURRENCY,
                    )
                    bodies, owners = bodies_for(invoices)
                    runs[connections] = await send(web_port, bodies, owners, connections, settings)
                    sent = {invoices[i].order_id for i in runs[connections].answered}
                    await check_shop_invoices(conn, connections, sent)
                await check_shop_books(conn)
            finally:
                await conn.close()
            await shop.stop_cleanly()
        finally:
            await shop.stop()
        problems = shop.problems()
        check(not problems, "the shop logged errors:\n" + "\n".join(problems[:20]))
    finally:
        await sink.stop()
        await heleket.stop()
        await postgres.drop_database(dsn)
    summary = json.loads((await sink.wait_output("sink summary", 5)).split("sink summary ", 1)[1])
    credited = sum(len(run.answered) for run in runs.values())
    check(not summary["failures"], f"failed Bot API calls: {summary['failures']}")
    notices = summary["methods"].get("sendmessage", 0)
    check(notices == credited, f"{credited} top-ups credited but {notices} notices sent")
    return runs, check_confirmed(await heleket.answers(), credited)


def check_confirmed(answers: dict[str, int], credited: int) -> int:
    """Every credit had Heleket's word: a payment/info answered 200 per credited invoice at least, and no call
    failed. Returns how many payment/info calls were answered."""
    failed = {call: count for call, count in answers.items() if not call.endswith(" 200")}
    check(not failed, f"the Heleket emulator answered some calls with an error: {failed}")
    confirmed = answers.get(f"{INFO} 200", 0)
    check(confirmed >= credited, f"{credited} top-ups credited but Heleket confirmed only {confirmed}")
    return confirmed


async def check_shop_invoices(conn: asyncpg.Connection, connections: int, sent: set[str]) -> None:
    rows = await conn.fetch(
        "SELECT i.order_id, i.amount, i.credited_amount, i.status, "
        "(SELECT count(*) FROM movements m WHERE m.idempotency_key = 'invoice:' || i.id || ':credit') AS credits, "
        "(SELECT count(*) FROM invoice_events e WHERE e.invoice_id = i.id) AS events "
        "FROM invoices i WHERE i.order_id LIKE $1",
        f"bench-{connections}-%",
    )
    wrong = []
    for row in rows:
        paid = row["order_id"] in sent
        expected = (row["amount"], "paid", 1, 1) if paid else (None, "check", 0, 0)
        found = (row["credited_amount"], row["status"], row["credits"], row["events"])
        if found != expected:
            wrong.append(f"{row['order_id']}: credited/status/credits/events {found}, expected {expected}")
    if wrong:
        raise BenchFailure(
            f"{len(wrong)} invoices are wrong after {connections} connections:\n" + "\n".join(wrong[:10])
        )


async def check_shop_books(conn: asyncpg.Connection) -> None:
    owed = {
        r["user_id"]: r["total"]
        for r in await conn.fetch(
            "SELECT user_id, sum(credited_amount) AS total FROM invoices WHERE credited_amount IS NOT NULL "
            "GROUP BY user_id"
        )
    }
    balances = {
        r["user_id"]: r["balance"]
        for r in await conn.fetch("SELECT user_id, balance FROM accounts WHERE kind = 'user'")
    }
    wrong = [u for u in set(owed) | set(balances) if owed.get(u, Decimal(0)) != balances.get(u, Decimal(0))]
    check(not wrong, f"{len(wrong)} balances are not the sum of their credited invoices, e.g. user {wrong[:3]}")
    await check_books(conn)
