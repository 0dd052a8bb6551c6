"""Kill `shopbot serve` with SIGKILL at each step of an order, and of a batch of orders paid with one payment,
start it again: each order still ends completed or refunded once, the wallet paid at most once per order, and
the books balance."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg
import pytest

from shopbot.fulfilment.orders import Order, Orders
from shopbot.ledger import Ledger, MovementType, SystemAccount
from shopbot.ledger.verify import verify_ledger
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of
from tests.ledger.helpers import make_user
from tests.ops.serve_process import ServeProcess
from tests.shop_harness import HELEKET_KEY, MERCHANT, TOKEN

TON = 10**9
BATCH = 4  # orders a batch test places before the shop starts: claimed together, paid with one payment


async def until(condition: Callable[[], bool], timeout: float = 30, what: object = None) -> None:
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"gave up waiting; {what!r}")


@dataclass
class World:
    """What a trap sees and touches: the emulator, the database, the orders placed, and connections it holds
    (row locks that stop the shop at a step) until the shop has been killed."""

    fragment: FragmentEmulator
    pool: asyncpg.Pool
    orders: list[Order]
    held: list[asyncpg.Connection] = field(default_factory=list)

    async def lock_rows(self, order_ids: list[int]) -> None:
        """Lock these order rows in an open transaction: the shop's next write to them waits."""
        conn = await self.pool.acquire()
        self.held.append(conn)
        await conn.execute("BEGIN")
        await conn.execute("SELECT id FROM orders WHERE id = ANY($1) FOR UPDATE", order_ids)

    async def waits_on_lock(self, marker: str) -> bool:
        """Whether a statement containing `marker` waits on a row lock."""
        return bool(
            await self.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
                f"%{marker}%",
            )
        )

    async def let_go(self) -> None:
        for conn in self.held:
            await conn.execute("ROLLBACK")
            await self.pool.release(conn)
        self.held.clear()


class Crash:
    """Where to kill: `arm` sets the trap before shopbot starts; `reached` says when to kill (polled; it may take
    steps of its own on the way, e.g. lock rows once the shop is past a point). `landing`: seconds the emulated
    chain takes to land a payment; `at_kill`, `paid_at_kill`: checked right after the kill, so each trap is
    known to stop the shop where its name says."""

    def __init__(
        self,
        name: str,
        arm: Callable[[FragmentEmulator], None],
        reached: Callable[[FragmentEmulator], bool] | None = None,
        *,
        reached_in: Callable[[World], Awaitable[bool]] | None = None,
        landing: float = 0.0,
        at_kill: tuple[str, ...] | None = None,
        paid_at_kill: int | None = None,
    ) -> None:
        self.name, self.arm, self.landing = name, arm, landing
        self._reached, self._reached_in = reached, reached_in
        # What the trap promises when the shop dies: the orders' states, and how many payments had landed.
        self.at_kill, self.paid_at_kill = at_kill, paid_at_kill

    async def reached(self, world: World) -> bool:
        if self._reached_in is not None:
            return await self._reached_in(world)
        assert self._reached is not None
        return self._reached(world.fragment)


CRASHES = [
    # The service created the Fragment order; its answer never reaches the shop.
    Crash("after_the_hold", lambda f: f.delay_next("create_order", 60), lambda f: bool(f.orders)),
    # The signed payment is stored; its first submission is lost before the service handled it.
    Crash("after_prepare", lambda f: f.drop_next("submit"), lambda f: any(c.endpoint == "submit" for c in f.calls)),
    # The library is inside its own retry loop; nothing has been sent yet.
    Crash(
        "during_submit",
        lambda f: f.fail_next("submit", "TON_SERVICE_UNAVAILABLE", times=2),
        lambda f: sum(c.endpoint == "submit" for c in f.calls) == 2,
    ),
    # The payment went out and the service answered, but the shop never read the answer.
    Crash("after_the_answer", lambda f: f.delay_next("submit", 60), lambda f: bool(f.payments)),
]


def all_created(f: FragmentEmulator) -> bool:
    return len(f.orders) >= BATCH


class SignedNotStored:
    """The batch's payment is signed but not stored: its wallet read (prepare) is held a moment, the orders' rows
    are locked meanwhile, and the shop is killed while its write of the signed payment waits for them."""

    def __init__(self) -> None:
        self.locked = False

    async def __call__(self, world: World) -> bool:
        if not self.locked:
            if not world.fragment.waiting["wallet_info"]:
                return False
            await world.lock_rows([order.id for order in world.orders])
            self.locked = True
        return await world.waits_on_lock("state = 'paying'")


class CompletingHalfway:
    """The payment landed and the answer came: the shop completes the orders one by one; it is killed after the
    first ones, while its completion of the last waits on that row's lock (taken while the payment flew)."""

    def __init__(self) -> None:
        self.locked = False

    async def __call__(self, world: World) -> bool:
        if not self.locked:
            if not world.fragment.in_flight:
                return False
            await world.lock_rows([world.orders[-1].id])
            self.locked = True
        return await world.waits_on_lock("state = 'completed'")


QUEUED, PAYING = ("queued",) * BATCH, ("paying",) * BATCH
BATCH_CRASHES = [
    # Every order of the batch is created on the service; the shop's wallet read before signing never returns.
    Crash(
        "batch_after_creates",
        lambda f: f.delay_next("wallet_info", 60, when=lambda: all_created(f)),
        lambda f: bool(f.waiting["wallet_info"]),
        landing=1.0,
        at_kill=QUEUED,
        paid_at_kill=0,
    ),
    # The payment for the whole batch is signed (in the shop's memory only); storing it waits on a row lock.
    Crash(
        "batch_after_prepare",
        lambda f: f.delay_next("wallet_info", 1.0, when=lambda: all_created(f)),
        reached_in=SignedNotStored(),
        landing=1.0,
        at_kill=QUEUED,
        paid_at_kill=0,
    ),
    # Stored on every order (paying); its first submission is lost before the service handled it.
    Crash(
        "batch_after_recording",
        lambda f: f.drop_next("submit"),
        lambda f: any(c.endpoint == "submit" for c in f.calls),
        landing=1.0,
        at_kill=PAYING,
        paid_at_kill=0,
    ),
    # Accepted by the chain, on its way: the orders read processing, nothing has landed yet.
    Crash("batch_in_flight", lambda f: None, lambda f: bool(f.in_flight), landing=3.0, at_kill=PAYING, paid_at_kill=0),
    # Landed (the money left, the seqno moved); the answer is held, so the shop never completes an order.
    Crash(
        "batch_after_landing",
        lambda f: f.delay_next("submit", 60),
        lambda f: bool(f.payments),
        landing=1.0,
        at_kill=PAYING,
        paid_at_kill=1,
    ),
    # The answer came; some orders of the batch are completed, the last one is not.
    Crash(
        "batch_completing",
        lambda f: None,
        reached_in=CompletingHalfway(),
        landing=1.0,
        at_kill=("completed",) * (BATCH - 1) + ("paying",),
        paid_at_kill=1,
    ),
]


def write_config(
    folder: Path,
    telegram_port: int,
    fragment_port: int,
    heleket_port: int,
    database_url: str,
    seed: str,
    wallet_type: str = "v4r2",
) -> Path:
    path = folder / "shopbot.toml"
    path.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\napi_base = "http://127.0.0.1:{telegram_port}"\npoll_timeout = 1\n'
        f'[database]\nurl = "{database_url}"\npool_min = 1\npool_max = 4\n[web]\nport = 0\n[metrics]\nport = 0\n'
        f'[fragment]\nbase_url = "http://127.0.0.1:{fragment_port}"\nseed_phrase = "{seed}"\nkyc = false\n'
        f'wallet_type = "{wallet_type}"\nmax_ton_per_order = 50.0\nrequest_timeout = 5.0\nlow_balance_ton = "1"\n'
        # Heleket's TON rate, for the cost guard every order passes before it is signed.
        f'[heleket]\nbase_url = "http://127.0.0.1:{heleket_port}"\nmerchant_uuid = "{MERCHANT}"\n'
        f'api_key = "{HELEKET_KEY}"\nallowed_ips = []\npoll_seconds = 3600.0\n'
        f'[shutdown]\ngrace_seconds = 5\n[log]\nformat = "json"\n'
    )
    return path


async def place_orders(pool: asyncpg.Pool, count: int, first_user: int = 900) -> list[Order]:
    """`count` buyers with 10.00 each, each with an order for 100 Stars (2.00), queued."""
    ledger = Ledger(pool, "USD")
    placed = []
    for n in range(count):
        user_id = first_user + n
        await make_user(pool, user_id)
        await ledger.credit(
            user_id=user_id,
            amount=Decimal("10"),
            key=f"seed:{user_id}",
            type=MovementType.BONUS,
            reference="test",
            source=SystemAccount.BONUSES,
        )
        placed.append(
            await Orders(pool, ledger).place(
                user_id=user_id,
                product="stars",
                quantity=100,
                recipient="best_friend",
                recipient_name="Best Friend",
                price=Decimal("2.00"),
                currency="USD",
            )
        )
    return placed


async def crash_then_restart(
    tmp_path: Path, database_url: str, crash: Crash, count: int, wallet_type: str, later: int = 0
) -> FragmentEmulator:
    """Place `count` orders, start the shop with the trap armed, SIGKILL it once the trap says so, place `later`
    orders more, start it again and wait until every order ends; then check each was settled once and paid at
    most once: the first ones with one payment, the later ones with another."""
    telegram = TelegramEmulator(token=TOKEN)
    fragment = FragmentEmulator(landing_delay=crash.landing)
    fragment.add_user("best_friend", "Best Friend")
    seed = " ".join(throwaway_mnemonic())
    fragment.fund(wallet_address_of(seed, wallet_type), 100 * TON)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        placed = await place_orders(pool, count)
        ids = [order.id for order in placed]
        world = World(fragment, pool, placed)
        async with anyio.create_task_group() as group:
            telegram_port = await group.start(serve_telegram_emulator, telegram)
            fragment_port = await group.start(serve_fragment_emulator, fragment)
            heleket_port = await group.start(
                serve_heleket_emulator, HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
            )
            config = write_config(tmp_path, telegram_port, fragment_port, heleket_port, database_url, seed, wallet_type)
            crash.arm(fragment)
            first = ServeProcess(config)
            try:
                await first.wait_ready()
                with anyio.fail_after(30):
                    while not await crash.reached(world):
                        await anyio.sleep(0.02)
            except TimeoutError:
                raise AssertionError(f"the trap was never reached; {fragment.calls!r}\n{first.output}") from None
            finally:
                first.process.send_signal(signal.SIGKILL)
                first.kill()
                await world.let_go()  # what the killed shop was writing under those locks is rolled back
            if crash.at_kill is not None:
                states = [r["state"] for r in await pool.fetch("SELECT state FROM orders WHERE id = ANY($1)", ids)]
                assert sorted(states) == sorted(crash.at_kill), first.output
            if crash.paid_at_kill is not None:
                assert len(fragment.payments) == crash.paid_at_kill
            ids += [order.id for order in await place_orders(pool, later, first_user=950)]
            second = ServeProcess(config)
            try:
                await second.wait_ready()
                with anyio.fail_after(60):
                    while set(
                        await pool.fetchval("SELECT array_agg(DISTINCT state) FROM orders WHERE id = ANY($1)", ids)
                    ) - {"completed", "refunded"}:
                        await anyio.sleep(0.1)
                second.signal(signal.SIGTERM)
                assert await second.wait_exit(timeout=15) == 0
            finally:
                second.kill()
            group.cancel_scope.cancel()
        rows = await pool.fetch("SELECT id, state, fragment_order_id FROM orders WHERE id = ANY($1) ORDER BY id", ids)
        assert {row["state"] for row in rows} == {"completed"}, second.output
        for row in rows:
            assert len(fragment.payments_for(str(row["fragment_order_id"]))) == 1
            keys = [
                r["idempotency_key"]
                for r in await pool.fetch(
                    "SELECT idempotency_key FROM movements WHERE reference = $1 ORDER BY id", f"order:{row['id']}"
                )
            ]
            assert keys == [f"order:{row['id']}:hold", f"order:{row['id']}:capture"]
        # One payment paid every order of the batch, however the shop was cut short (and one more the later ones).
        fragment_ids = [str(r["fragment_order_id"]) for r in rows]
        batches = [sorted(fragment_ids[:count])] + ([sorted(fragment_ids[count:])] if later else [])
        assert [sorted(p.order_ids) for p in fragment.payments] == batches
        assert (await verify_ledger(pool)).ok
    finally:
        await pool.close()
    return fragment


@pytest.mark.timeout(180)
@pytest.mark.parametrize("crash", CRASHES, ids=lambda crash: crash.name)
async def test_sigkill_at_any_step_then_restart_settles_the_order_once(
    tmp_path: Path, database_url: str, crash: Crash
) -> None:
    await crash_then_restart(tmp_path, database_url, crash, 1, "v4r2")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("crash", BATCH_CRASHES, ids=lambda crash: crash.name)
async def test_sigkill_at_any_step_of_a_batch_then_restart_settles_each_order_once(
    tmp_path: Path, database_url: str, crash: Crash
) -> None:
    await crash_then_restart(tmp_path, database_url, crash, BATCH, "v5r1")


@pytest.mark.timeout(180)
async def test_orders_queued_behind_a_payment_in_flight_are_signed_once_it_has_landed(
    tmp_path: Path, database_url: str
) -> None:
    """Restarted while its batch is on its way (stored on orders that wait to be verified), the shop does not sign
    the orders queued meanwhile for the seqno that batch is landing with: a second external for it would be
    refused (and wait out its own expiry); it signs them once the first has landed."""
    # Landing slowly: still on its way when the shop is back.
    crash = Crash("in_flight", lambda f: None, lambda f: bool(f.in_flight), landing=12.0, at_kill=PAYING)
    fragment = await crash_then_restart(tmp_path, database_url, crash, BATCH, "v5r1", later=2)
    assert [(len(signed.order_ids), signed.seqno) for signed in fragment.received] == [(BATCH, 0), (2, 1)]
