"""Two real `shopbot serve` processes in webhook mode behind one address, sharing one PostgreSQL and one Redis.

A round-robin proxy in the test stands where Caddy stands in deploy/compose.yaml: Telegram's updates and
Heleket's webhooks reach both instances in turn. Redis is a real server both processes share: TEST_REDIS_URL
(database 14, flushed before and after) when set, as in CI; otherwise a throwaway `redis-server` on a free
port when the binary exists; otherwise the suite's emulated Redis, which serves real TCP too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shopbot.web.asgi import serve_asgi
from tests.bot.test_broadcast import Admin, broadcast_calls, delivered_to
from tests.ops.real_shop import (
    World,
    ask_top_up,
    buy_stars,
    check_money,
    outside_world,
    pay_open_invoices,
    seed_buyers,
    wait_settled,
    write_serve_config,
)
from tests.ops.serve_process import ServeProcess
from tests.shop_harness import free_port

pytestmark = pytest.mark.anyio
REDIS_DB = 14  # a database number no other test uses
ADMIN = 9001
WALKERS = range(6001, 6011)
PAYERS = range(6101, 6104)
BUYERS = range(6201, 6204)
ROUNDS = 3  # top-ups per payer, purchases per buyer
INFO = "/v1/payment/info"
INFO_SECONDS = 0.2  # Heleket takes this long to answer each payment/info: passes last long enough to overlap
WAITING_INVOICES = 6  # opened before the shop starts and never paid: only the reconciler asks about them
WAITING_USER = 6999  # whose they are


@pytest.fixture
def shared_redis(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of one Redis both processes use, empty before and after."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        url = urlunsplit(urlsplit(url)._replace(path=f"/{REDIS_DB}"))
        with flushed(url):
            yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield request.getfixturevalue("redis_server_url")
        return
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def wait_for_redis(url: str, server: subprocess.Popen[bytes]) -> None:
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    return
            assert server.poll() is None, f"redis-server exited with {server.returncode}"
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer within 10 s")
    finally:
        client.close()


@contextlib.contextmanager
def flushed(url: str) -> Iterator[None]:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield
        client.flushdb()
    finally:
        client.close()


class RoundRobin:
    """One public address in front of the instances, taking turns per request as Caddy's `lb_policy
    round_robin` does; it counts which instance served which path."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turns = itertools.count()
        self.served: Counter[tuple[int, str]] = Counter()
        self.client = httpx.AsyncClient(timeout=30, trust_env=False)
        self.app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])

    async def forward(self, request: Request) -> Response:
        index = next(self.turns) % len(self.backends)
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length", "connection")}
        try:
            answer = await self.client.request(
                request.method, self.backends[index] + request.url.path, content=await request.body(), headers=headers
            )
        except httpx.HTTPError:
            return Response(b"bad gateway", status_code=502)
        self.served[(index, request.url.path)] += 1
        return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))


class InFlight:
    """Heleket's API with a count of the payment/info calls being answered at the same moment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = 0
        self.most = 0
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != INFO:
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1
            self.answered += 1


@contextlib.asynccontextmanager
async def instances(
    world: World, database_url: str, redis_url: str, folder: Path, **config: Any
) -> AsyncIterator[tuple[list[ServeProcess], RoundRobin]]:
    """Two `shopbot serve` in webhook mode behind the round-robin proxy, both ready; stopped with SIGTERM after."""
    ports = [free_port(), free_port()]
    proxy = RoundRobin([f"http://127.0.0.1:{port}" for port in ports])
    async with anyio.create_task_group() as group:
        proxy_port = await group.start(partial_serve, proxy.app)
        shops = [
            ServeProcess(
                write_serve_config(
                    folder / f"shopbot-{n}.toml",
                    world,
                    database_url,
                    web_port=port,
                    public_url=f"http://127.0.0.1:{proxy_port}",
                    webhook=True,
                    redis_url=redis_url,
                    **config,
                )
            )
            for n, port in enumerate(ports)
        ]
        try:
            for shop, port in zip(shops, ports, strict=True):
                assert await shop.wait_ready() == port
            yield shops, proxy
            for shop in shops:
                shop.signal(signal.SIGTERM)
            for shop in shops:
                assert await shop.wait_exit(timeout=20) == 0, shop.output[-3000:]
        finally:
            for shop in shops:
                shop.kill()
            await proxy.client.aclose()
            group.cancel_scope.cancel()


async def partial_serve(app: ASGIApp, *, task_status: anyio.abc.TaskStatus[int]) -> None:
    await serve_asgi(app, host="127.0.0.1", port=0, graceful_seconds=1.0, task_status=task_status)


async def open_waiting_invoices(world: World, database_url: str) -> None:
    """Invoices a user opened earlier and has not paid: Heleket knows them, the shop's reconciler asks about them."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, first_name, language) VALUES ($1, 'Waiting', 'en') ON CONFLICT DO NOTHING",
            WAITING_USER,
        )
        for n in range(WAITING_INVOICES):
            invoice = world.heleket.open_invoice(f"waiting-{n}", Decimal("3"))
            await conn.execute(
                "INSERT INTO invoices (order_id, user_id, amount, currency, uuid, url, status) "
                "VALUES ($1, $2, 3, 'USD', $3, $4, 'check')",
                invoice.order_id,
                WAITING_USER,
                invoice.uuid,
                invoice.url,
            )
    finally:
        await conn.close()


async def seed_everyone(world: World, database_url: str) -> list[int]:
    """Every user the test has, known to the shop (so a broadcast to everyone has a fixed audience)."""
    everyone = [ADMIN, WAITING_USER, *WALKERS, *PAYERS, *BUYERS]
    for user in everyone:
        world.telegram.add_user(user, first_name=f"User{user}", language_code="en")
    await seed_buyers(database_url, BUYERS, Decimal("100"))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO users (id, first_name, language) VALUES ($1, 'User', 'en') ON CONFLICT DO NOTHING",
            [(user,) for user in everyone],
        )
    finally:
        await conn.close()
    return everyone


async def shop_for_a_while(world: World) -> None:
    """Payers top up and pay, buyers buy Stars: each step through the shared address."""

    async def payer(user: int) -> None:
        for _ in range(ROUNDS):
            assert await ask_top_up(world, user)
            pay_open_invoices(world)

    async def buyer(user: int) -> None:
        for _ in range(ROUNDS):
            assert await buy_stars(world, user)

    async with anyio.create_task_group() as group:
        for user in PAYERS:
            group.start_soon(payer, user)
        for user in BUYERS:
            group.start_soon(buyer, user)


async def broadcast_to_everyone(world: World, audience: int) -> None:
    admin = Admin(SimpleNamespace(telegram=world.telegram))  # the admin's side needs only the Telegram emulator
    _, confirm = await admin.compose()
    assert f"It goes to {audience} users" in (confirm.text or "")
    broadcast_id = int((confirm.text or "").split("#")[1].split(" ")[0])
    answer = await admin.press(confirm, "Send")
    assert answer.params["text"] == f"Sending started: {audience} recipients."
    report = await admin.report(broadcast_id, timeout=60)
    assert f"Sent: {audience} of {audience}" in report


async def test_two_instances_share_the_work_and_do_nothing_twice(
    database_url: str, shared_redis: str, tmp_path: Path
) -> None:
    watch: list[InFlight] = []

    def watched(app: ASGIApp) -> ASGIApp:
        watch.append(InFlight(app))
        return watch[0]

    async with outside_world(heleket_middleware=watched) as world:
        world.heleket.set_latency(INFO, INFO_SECONDS)
        everyone = await seed_everyone(world, database_url)
        await open_waiting_invoices(world, database_url)
        async with instances(world, database_url, shared_redis, tmp_path, admin_ids=(ADMIN,)) as (_, proxy):
            # Both reconcilers start with a pass over the waiting invoices; only one asks Heleket at a time.
            with anyio.fail_after(30):
                while watch[0].answered < WAITING_INVOICES:
                    await anyio.sleep(0.05)
            assert watch[0].most == 1, "two reconcilers asked Heleket at the same time"

            async with anyio.create_task_group() as group:
                group.start_soon(shop_for_a_while, world)
                group.start_soon(broadcast_to_everyone, world, len(everyone))
            await wait_settled(database_url, world)
            tally = await check_money(database_url, world, PAYERS)
            assert tally == {"top-ups": len(PAYERS) * ROUNDS, "orders": len(BUYERS) * ROUNDS}

            # Every user got the broadcast once, and no message was attempted twice.
            assert sorted(delivered_to(world.telegram)) == sorted(everyone)
            assert len(broadcast_calls(world.telegram)) == len(everyone)
            # Both instances took Telegram's updates and Heleket's webhooks.
            for index in range(2):
                assert proxy.served[(index, "/webhook/telegram")] > 0, proxy.served
                assert proxy.served[(index, "/webhook/heleket")] > 0, proxy.served


async def test_a_rate_limit_counts_across_both_instances(database_url: str, shared_redis: str, tmp_path: Path) -> None:
    limits = {"messages_per_minute": 3, "burst": 0, "new_user_window": 0}
    async with outside_world() as world, instances(world, database_url, shared_redis, tmp_path, rate_limit=limits):
        flooder = 6301
        world.telegram.add_user(flooder, first_name="Flood", language_code="en")
        for _ in range(8):
            world.telegram.send_text(flooder, "/balance")
        with anyio.fail_after(20):
            while len(replies(world, flooder)) < 4:
                await anyio.sleep(0.05)
            while await pending_updates(world):
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # the last updates handed over are answered (or dropped) by now
        texts = replies(world, flooder)
        assert sum("Your balance" in text for text in texts) == 3, texts  # three in all, not three per instance
        assert sum("You are going a little fast" in text for text in texts) == 1, texts


def replies(world: World, user: int) -> list[str]:
    return [m.text or "" for m in world.telegram.chat_messages(user)]


async def pending_updates(world: World) -> int:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{world.telegram_port}", trust_env=False) as telegram:
        info = (await telegram.get(f"/bot{world.telegram.token}/getWebhookInfo")).json()["result"]
    return int(info["pending_update_count"])
