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

The shop answers a webhook once it is stored in its inbox and credits after the answer (the settler), so after
each run the bench waits for the inbox to drain before it checks, and the next run starts on an idle shop. Then
"credit latency p99": webhooks offered open-loop at `credit_rate` per second (10 % repeats), Heleket's
payment/info answering in `credit_info_latency` (50 ms), and for each invoice the time from its webhook's 200
to its credit being visible in the database (polled every POLL_SECONDS, so at most that much too high).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
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
CREDIT = "credit"  # the invoices of the credit-latency phase: bench-credit-N
POLL_SECONDS = 0.01
IDLE_SECONDS = 1.0  # a keep-alive connection idle longer is not reused (hypercorn closes idle ones after 5 s)
DRAIN_SECONDS = 180.0


@dataclass
class WebhookSettings:
    connections: tuple[int, ...] = (8, 32)
    seconds: float = 8.0
    warmup: float = 1.5
    users: int = 2000
    shop_invoices: int = 20_000  # per connection count; a run ends early if they run out
    ceiling_invoices: int = 40_000
    info_latency: float = 0.0  # seconds the Heleket emulator takes to answer each payment/info
    credit_rate: float = 100.0  # webhooks/s offered in the credit-latency phase
    credit_seconds: float = 10.0
    credit_info_latency: float = 0.05  # payment/info's answer time in that phase


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
    shop, confirmed, latency = await run_shop(postgres, folder, settings)
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
    result.measures.append(
        Measure(
            "credit latency p99",
            latency.p99,
            "ms",
            target="< 1 s",
        )
    )
    for connections, seconds in latency.drains.items():
        result.notes.append(
            f"{connections} connections: the settler credited the run's backlog {seconds:.1f} s after it"
        )
    result.notes.append(
        f"credit latency: {len(latency.latencies)} invoices, webhooks offered at {settings.credit_rate:g}/s "
        f"(achieved {latency.rate:.0f}/s), payment/info answering in {settings.credit_info_latency * 1000:.0f} ms; "
        f"from the 200 to the credit: p50 {latency.p50:.0f} ms, p99 {latency.p99:.0f} ms, max {latency.max:.0f} ms"
    )
    result.notes.append(
        f"shop: Heleket's payment/info answered {confirmed} times, each after "
        f"{settings.info_latency * 1000:.0f} ms (the emulator in a process of its own)"
    )
    result.checks += [
        "every webhook answered 200; each paid invoice credited exactly once with its amount, duplicates none",
        "every balance equals the sum of its credited invoices; ledger verify passes",
        "one top-up notice per credit reached Telegram; the ceiling's balances likewise exact",
        "inbox: one row per event (repeats stored once), each settled exactly once as credited, none left pending",
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


def plan_shop_invoices(connections: int | str, settings: WebhookSettings, count: int = 0) -> list[Invoice]:
    """The invoices of one connection count (or of the credit phase), in sending order; their uuids are the ones
    Heleket gives."""
    return [
        Invoice(f"bench-{connections}-{g}", "", Decimal(1 + g % 50), FIRST_USER + g % settings.users)
        for g in range(1, (count or settings.shop_invoices) + 1)
    ]


@dataclass
class CreditRun:
    """The credit-latency phase: per invoice, seconds from its webhook's 200 to its credit seen."""

    latencies: list[float] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    sent: int = 0
    elapsed: float = 0.0
    drains: dict[int, float] = field(default_factory=dict)  # connections -> seconds to settle a run's backlog

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def max(self) -> float:
        return max(self.latencies, default=0.0) * 1000


async def paced_send(port: int, bodies: list[bytes], rate: float) -> tuple[dict[int, float], list[int], float]:
    """Open loop: body i goes out at start + i / rate on a free keep-alive connection (a new one when none is
    free). Returns when each body was answered (monotonic), the statuses, and the seconds the sending took."""
    answered: dict[int, float] = {}
    statuses: list[int] = []
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened: list[asyncio.StreamWriter] = []

    async def one(index: int, body: bytes) -> None:
        while free and time.monotonic() - free[-1][2] > IDLE_SECONDS:  # the server may have closed it
            free.pop()[1].close()
        if free:
            reader, writer, _ = free.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            opened.append(writer)
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        writer.write(head + body)
        try:
            response = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in response.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if length:
                await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise BenchFailure(f"the server broke a connection mid-request: {error!r}") from None
        answered[index] = time.monotonic()
        statuses.append(int(response[9:12]))
        if b"\r\nconnection: close" in response.lower():
            writer.close()
        else:
            free.append((reader, writer, time.monotonic()))

    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as group:
            for index, body in enumerate(bodies):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                group.create_task(one(index, body))
    finally:
        for writer in opened:
            writer.close()
    return answered, statuses, time.monotonic() - started


async def watch_credits(conn: asyncpg.Connection, prefix: str, expected: int, done: asyncio.Event) -> dict[str, float]:
    """When (monotonic) each invoice of `prefix` was first seen credited, polling every POLL_SECONDS until
    `expected` are and the sending is `done`, or DRAIN_SECONDS pass."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and not (done.is_set() and len(seen) >= expected):
        rows = await conn.fetch(
            "SELECT order_id FROM invoices WHERE order_id LIKE $1 AND credited_amount IS NOT NULL", prefix + "%"
        )
        now = time.monotonic()
        for row in rows:
            seen.setdefault(row["order_id"], now)
        await asyncio.sleep(POLL_SECONDS)
    return seen


async def run_credit_latency(
    conn: asyncpg.Connection, port: int, invoices: list[Invoice], settings: WebhookSettings, credit: CreditRun
) -> None:
    """Offer the phase's webhooks at `credit_rate`; each invoice's time from its first 200 to its credit."""
    bodies, owners = bodies_for(invoices)
    count = int(settings.credit_rate * settings.credit_seconds)
    bodies, owners = bodies[:count], owners[:count]
    done = asyncio.Event()
    watcher = asyncio.create_task(watch_credits(conn, f"bench-{CREDIT}-", len(set(owners)), done))
    try:
        answered, statuses, elapsed = await paced_send(port, bodies, settings.credit_rate)
    except BaseException:
        watcher.cancel()
        raise
    finally:
        done.set()
    seen = await watcher
    check(statuses.count(200) == len(bodies), f"credit phase: webhooks answered {sorted(set(statuses))}")
    first: dict[int, float] = {}
    for index, owner in enumerate(owners):
        first[owner] = min(first.get(owner, answered[index]), answered[index])
    missing = [invoices[o].order_id for o in first if invoices[o].order_id not in seen]
    check(not missing, f"credit phase: {len(missing)} invoices never credited, e.g. {missing[:3]}")
    credit.latencies = [max(0.0, seen[invoices[o].order_id] - at) for o, at in first.items()]
    credit.answered = set(first)
    credit.sent = len(bodies)
    credit.elapsed = elapsed


async def drained(conn: asyncpg.Connection) -> float:
    """Seconds until the shop's inbox has no pending event (the settler credited everything answered)."""
    started = time.monotonic()
    while await conn.fetchval("SELECT count(*) FROM heleket_inbox WHERE state = 'pending'"):
        check(time.monotonic() - started < DRAIN_SECONDS, f"the inbox did not drain in {DRAIN_SECONDS:g} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def check_inbox(conn: asyncpg.Connection) -> None:
    """Each event stored once (its repeats answered but not stored again) and settled once, as credited."""
    rows = await conn.fetch("SELECT state, outcome, attempts, count(*) AS n FROM heleket_inbox GROUP BY 1, 2, 3")
    found = [(r["state"], r["outcome"], r["attempts"]) for r in rows]
    check(found == [("settled", "credited", 1)], f"inbox events not each credited once: {found}")
    events = await conn.fetchval("SELECT count(*) FROM heleket_inbox")
    invoices = await conn.fetchval("SELECT count(*) FROM invoices WHERE credited_amount IS NOT NULL")
    check(events == invoices, f"{events} inbox events for {invoices} credited invoices")


async def run_shop(
    postgres: Postgres, folder: Path, settings: WebhookSettings
) -> tuple[dict[int, Run], int, CreditRun]:
    """The shop's runs, how many payment/info calls Heleket answered for them, and the credit-latency phase."""
    dsn = await postgres.fresh_database("webhooks")
    planned = {connections: plan_shop_invoices(connections, settings) for connections in settings.connections}
    credit_invoices = plan_shop_invoices(CREDIT, settings, int(settings.credit_rate * settings.credit_seconds))
    credit = CreditRun()
    every_invoice = [invoice for invoices in [*planned.values(), credit_invoices] for invoice in invoices]
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
                    await seed_shop_invoices(conn, invoices)
                    bodies, owners = bodies_for(invoices)
                    runs[connections] = await send(web_port, bodies, owners, connections, settings)
                    credit.drains[connections] = await drained(conn)  # the next run starts on an idle shop
                    sent = {invoices[i].order_id for i in runs[connections].answered}
                    await check_shop_invoices(conn, connections, sent)
                await seed_shop_invoices(conn, credit_invoices)
                await heleket.set_info_latency(settings.credit_info_latency)
                await run_credit_latency(conn, web_port, credit_invoices, settings, credit)
                await drained(conn)
                await check_shop_invoices(conn, CREDIT, {credit_invoices[i].order_id for i in credit.answered})
                await check_inbox(conn)
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
    credited = sum(len(run.answered) for run in runs.values()) + len(credit.answered)
    check(not summary["failures"], f"failed Bot API calls: {summary['failures']}")
    notices = summary["methods"].get("sendmessage", 0)
    check(notices == credited, f"{credited} top-ups credited but {notices} notices sent")
    return runs, check_confirmed(await heleket.answers(), credited), credit


async def seed_shop_invoices(conn: asyncpg.Connection, invoices: list[Invoice]) -> None:
    """Our invoice rows, as the top-up flow leaves them once Heleket made each one."""
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


def check_confirmed(answers: dict[str, int], credited: int) -> int:
    """Every credit had Heleket's word: a payment/info answered 200 per credited invoice at least, and no call
    failed. Returns how many payment/info calls were answered."""
    failed = {call: count for call, count in answers.items() if not call.endswith(" 200")}
    check(not failed, f"the Heleket emulator answered some calls with an error: {failed}")
    confirmed = answers.get(f"{INFO} 200", 0)
    check(confirmed >= credited, f"{credited} top-ups credited but Heleket confirmed only {confirmed}")
    return confirmed


async def check_shop_invoices(conn: asyncpg.Connection, connections: int | str, sent: set[str]) -> None:
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
