"""Kill `shopbot serve` with SIGKILL at each step of an order, start it again: the order still ends
completed or refunded, the wallet paid at most once, and the books balance."""

from __future__ import annotations

import signal
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg
import pytest

from shopbot.fulfilment.orders import Orders
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


async def until(condition: Callable[[], bool], timeout: float = 30, what: object = None) -> None:
    with anyio.move_on_after(timeout):
        while not condition():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"gave up waiting; {what!r}")


class Crash:
    """Where to kill: `arm` sets the trap before shopbot starts, `reached` says when to kill."""

    def __init__(
        self, name: str, arm: Callable[[FragmentEmulator], None], reached: Callable[[FragmentEmulator], bool]
    ) -> None:
        self.name, self.arm, self.reached = name, arm, reached


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


def write_config(
    folder: Path, telegram_port: int, fragment_port: int, heleket_port: int, database_url: str, seed: str
) -> Path:
    path = folder / "shopbot.toml"
    path.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\napi_base = "http://127.0.0.1:{telegram_port}"\npoll_timeout = 1\n'
        f'[database]\nurl = "{database_url}"\npool_min = 1\npool_max = 4\n[web]\nport = 0\n[metrics]\nport = 0\n'
        f'[fragment]\nbase_url = "http://127.0.0.1:{fragment_port}"\nseed_phrase = "{seed}"\nkyc = false\n'
        f'max_ton_per_order = 50.0\nrequest_timeout = 5.0\nlow_balance_ton = "1"\n'
        # Heleket's TON rate, for the cost guard every order passes before it is signed.
        f'[heleket]\nbase_url = "http://127.0.0.1:{heleket_port}"\nmerchant_uuid = "{MERCHANT}"\n'
        f'api_key = "{HELEKET_KEY}"\nallowed_ips = []\npoll_seconds = 3600.0\n'
        f'[shutdown]\ngrace_seconds = 5\n[log]\nformat = "json"\n'
    )
    return path


@pytest.mark.timeout(180)
@pytest.mark.parametrize("crash", CRASHES, ids=lambda crash: crash.name)
async def test_sigkill_at_any_step_then_restart_settles_the_order_once(
    tmp_path: Path, database_url: str, crash: Crash
) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    fragment = FragmentEmulator()
    fragment.add_user("best_friend", "Best Friend")
    seed = " ".join(throwaway_mnemonic())
    fragment.fund(wallet_address_of(seed, "v4r2"), 100 * TON)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    try:
        ledger = Ledger(pool, "USD")
        await make_user(pool, 900)
        await ledger.credit(
            user_id=900,
            amount=Decimal("10"),
            key="seed",
            type=MovementType.BONUS,
            reference="test",
            source=SystemAccount.BONUSES,
        )
        order = await Orders(pool, ledger).place(
            user_id=900,
            product="stars",
            quantity=100,
            recipient="best_friend",
            recipient_name="Best Friend",
            price=Decimal("2.00"),
            currency="USD",
        )
        async with anyio.create_task_group() as group:
            telegram_port = await group.start(serve_telegram_emulator, telegram)
            fragment_port = await group.start(serve_fragment_emulator, fragment)
            heleket_port = await group.start(
                serve_heleket_emulator, HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
            )
            config = write_config(tmp_path, telegram_port, fragment_port, heleket_port, database_url, seed)
            crash.arm(fragment)
            first = ServeProcess(config)
            try:
                await first.wait_ready()
                await until(lambda: crash.reached(fragment), what=fragment.calls)
            finally:
                first.process.send_signal(signal.SIGKILL)
                first.kill()
            second = ServeProcess(config)
            try:
                await second.wait_ready()
                with anyio.fail_after(60):
                    while (state := await pool.fetchval("SELECT state FROM orders WHERE id = $1", order.id)) not in (
                        "completed",
                        "refunded",
                    ):
                        await anyio.sleep(0.1)
                second.signal(signal.SIGTERM)
                assert await second.wait_exit(timeout=15) == 0
            finally:
                second.kill()
            group.cancel_scope.cancel()
        assert state == "completed", second.output
        fragment_id = await pool.fetchval("SELECT fragment_order_id FROM orders WHERE id = $1", order.id)
        assert len(fragment.payments_for(fragment_id)) == 1
        assert len(fragment.payments) == 1
        keys = [
            r["idempotency_key"]
            for r in await pool.fetch(
                "SELECT idempotency_key FROM movements WHERE reference = $1 ORDER BY id", f"order:{order.id}"
            )
        ]
        assert keys == [f"order:{order.id}:hold", f"order:{order.id}:capture"]
        assert (await verify_ledger(pool)).ok
    finally:
        await pool.close()
