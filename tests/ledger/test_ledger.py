"""The ledger: exact, idempotent, never negative, append-only, and provable with `ledger verify`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import asyncpg
import pytest

from shopbot.ledger import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    Ledger,
    MovementType,
    SystemAccount,
)
from shopbot.ledger.verify import verify_ledger
from tests.ledger.helpers import make_user
from tests.ops.serve_process import run_cli

D = Decimal
RECHARGE = MovementType.RECHARGE
CLEARING = SystemAccount.HELEKET_CLEARING


@pytest.fixture
def ledger(pool: asyncpg.Pool) -> Ledger:
    return Ledger(pool, "USD")


async def test_credit_then_debit_moves_exact_amounts(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 1)
    credited = await ledger.credit(
        user_id=user, amount=D("10.10"), key="k1", type=RECHARGE, reference="invoice:1", source=CLEARING
    )
    assert credited.applied and credited.available == D("10.10")
    debited = await ledger.debit(
        user_id=user,
        amount=D("0.30"),
        key="k2",
        type=MovementType.ADJUSTMENT,
        reference="admin:1",
        destination=SystemAccount.ADJUSTMENTS,
    )
    assert debited.available == D("9.80")
    assert (await ledger.balance(user)).available == D("9.80")
    assert (await verify_ledger(pool)).ok


async def test_the_same_key_moves_money_once(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 2)
    first = await ledger.credit(
        user_id=user, amount=D("5"), key="invoice:9:credit", type=RECHARGE, reference="invoice:9", source=CLEARING
    )
    again = await ledger.credit(
        user_id=user, amount=D("5.00"), key="invoice:9:credit", type=RECHARGE, reference="invoice:9", source=CLEARING
    )
    assert (first.applied, again.applied) == (True, False)
    assert again.movement_id == first.movement_id
    assert (await ledger.balance(user)).available == D("5")


async def test_a_reused_key_with_different_terms_is_refused(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 3)
    await ledger.credit(user_id=user, amount=D("5"), key="k", type=RECHARGE, reference="invoice:1", source=CLEARING)
    with pytest.raises(IdempotencyConflict):
        await ledger.credit(user_id=user, amount=D("6"), key="k", type=RECHARGE, reference="invoice:1", source=CLEARING)
    assert (await ledger.balance(user)).available == D("5")


@pytest.mark.parametrize("operation", ["hold", "debit"])
async def test_concurrent_debits_never_overdraw(ledger: Ledger, pool: asyncpg.Pool, operation: str) -> None:
    user = await make_user(pool, 4)
    await ledger.credit(
        user_id=user, amount=D("50"), key="topup", type=RECHARGE, reference="invoice:1", source=CLEARING
    )
    outcomes: list[str] = []

    async def buy(n: int) -> None:
        try:
            if operation == "hold":
                await ledger.hold(user_id=user, amount=D("1"), key=f"order:{n}:hold", reference=f"order:{n}")
            else:
                await ledger.debit(
                    user_id=user,
                    amount=D("1"),
                    key=f"debit:{n}",
                    type=MovementType.PURCHASE,
                    reference=f"order:{n}",
                    destination=SystemAccount.SHOP_REVENUE,
                )
            outcomes.append("ok")
        except InsufficientFunds:
            outcomes.append("refused")

    async with anyio.create_task_group() as group:
        for n in range(200):
            group.start_soon(buy, n)
    assert outcomes.count("ok") == 50 and outcomes.count("refused") == 150
    balance = await ledger.balance(user)
    assert (balance.available, balance.held) == (D("0"), D("50") if operation == "hold" else D("0"))
    assert (await verify_ledger(pool)).ok


async def test_many_concurrent_credits_with_duplicates_count_each_once(ledger: Ledger, pool: asyncpg.Pool) -> None:
    users = [await make_user(pool, 100 + n) for n in range(10)]

    async def credit(n: int) -> None:
        await ledger.credit(
            user_id=users[n % 10],
            amount=D("1.25"),
            key=f"invoice:{n}:credit",
            type=RECHARGE,
            reference=f"invoice:{n}",
            source=CLEARING,
        )

    async with anyio.create_task_group() as group:
        for n in list(range(300)) * 3:  # every credit arrives three times, interleaved
            group.start_soon(credit, n)
    for user in users:
        assert (await ledger.balance(user)).available == D("1.25") * 30
    assert (await verify_ledger(pool)).ok


async def test_hold_capture_and_release(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 5)
    await ledger.credit(user_id=user, amount=D("20"), key="t", type=RECHARGE, reference="invoice:1", source=CLEARING)
    held = await ledger.hold(user_id=user, amount=D("7.50"), key="order:1:hold", reference="order:1")
    assert (held.available, held.held) == (D("12.50"), D("7.50"))
    captured = await ledger.capture(
        user_id=user, amount=D("7.50"), cost=D("6.10"), key="order:1:capture", reference="order:1"
    )
    assert captured.held == D("0")
    await ledger.hold(user_id=user, amount=D("3"), key="order:2:hold", reference="order:2")
    released = await ledger.release(user_id=user, amount=D("3"), key="order:2:release", reference="order:2")
    assert (released.available, released.held) == (D("12.50"), D("0"))
    costs = await pool.fetchval(
        "SELECT sum(l.amount) FROM ledger l JOIN accounts a ON a.id = l.account_id WHERE a.kind = 'fragment_costs'"
    )
    revenue = await pool.fetchval(
        "SELECT sum(l.amount) FROM ledger l JOIN accounts a ON a.id = l.account_id WHERE a.kind = 'shop_revenue'"
    )
    assert (costs, revenue) == (D("6.10"), D("1.40"))
    assert (await verify_ledger(pool)).ok


async def test_a_capture_cannot_exceed_what_is_held(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 6)
    await ledger.credit(user_id=user, amount=D("5"), key="t", type=RECHARGE, reference="invoice:1", source=CLEARING)
    await ledger.hold(user_id=user, amount=D("2"), key="order:1:hold", reference="order:1")
    with pytest.raises(InsufficientFunds):
        await ledger.capture(user_id=user, amount=D("3"), key="order:1:capture", reference="order:1")


@pytest.mark.parametrize("amount", [D("0"), D("-1"), D("NaN"), D("Infinity"), D("0.000000001"), 1.5, 2])
async def test_bad_amounts_are_refused(ledger: Ledger, pool: asyncpg.Pool, amount: object) -> None:
    user = await make_user(pool, 7)
    with pytest.raises(InvalidAmount):
        await ledger.credit(
            user_id=user,
            amount=amount,
            key="k",
            type=RECHARGE,
            reference="r",  # type: ignore[arg-type]
            source=CLEARING,
        )


async def test_the_database_itself_refuses_a_negative_balance(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 8)
    await ledger.credit(user_id=user, amount=D("1"), key="k", type=RECHARGE, reference="r", source=CLEARING)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE accounts SET balance = -1 WHERE user_id = $1 AND kind = 'user'", user)


async def test_the_database_keeps_the_ledger_append_only(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 9)
    await ledger.credit(user_id=user, amount=D("1"), key="k", type=RECHARGE, reference="r", source=CLEARING)
    for statement in (
        "UPDATE ledger SET amount = amount * 2",
        "DELETE FROM ledger",
        "DELETE FROM movements",
        "UPDATE movements SET reference = 'x'",
        "TRUNCATE ledger CASCADE",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pool.execute(statement)


async def test_the_database_refuses_an_unbalanced_movement(pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 10)
    async with pool.acquire() as conn:
        account = await conn.fetchval(
            "INSERT INTO accounts (kind, user_id, currency, balance) VALUES ('user', $1, 'USD', 0) RETURNING id", user
        )

        async def post_one_leg() -> None:
            async with conn.transaction():
                movement = await conn.fetchval(
                    "INSERT INTO movements (idempotency_key, type, reference) VALUES ('x', 'bonus', 'r') RETURNING id"
                )
                await conn.execute(
                    "INSERT INTO ledger (movement_id, account_id, amount) VALUES ($1, $2, 5)", movement, account
                )

        with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
            await post_one_leg()


async def test_verify_names_a_drifted_cached_balance(ledger: Ledger, pool: asyncpg.Pool) -> None:
    user = await make_user(pool, 11)
    await ledger.credit(user_id=user, amount=D("3"), key="k", type=RECHARGE, reference="r", source=CLEARING)
    await pool.execute("UPDATE accounts SET balance = balance + 1 WHERE user_id = $1 AND kind = 'user'", user)
    report = await verify_ledger(pool)
    assert not report.ok
    assert len(report.problems) == 1
    assert "user 11 user, USD) caches 4.00000000 but its postings sum to 3.00000000" in report.problems[0]


async def test_ledger_verify_command_exits_non_zero_on_a_difference(
    ledger: Ledger, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    user = await make_user(pool, 12)
    await ledger.credit(user_id=user, amount=D("3"), key="k", type=RECHARGE, reference="r", source=CLEARING)
    config = tmp_path / "shopbot.toml"
    config.write_text('[log]\nlevel = "ERROR"\n')
    good = run_cli("--config", str(config), "ledger", "verify", SHOPBOT_DATABASE__URL=database_url)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "1 movements, 2 postings, 2 accounts: the ledger balances"
    await pool.execute("UPDATE accounts SET balance = balance - 1 WHERE user_id = $1 AND kind = 'user'", user)
    bad = run_cli("--config", str(config), "ledger", "verify", SHOPBOT_DATABASE__URL=database_url)
    assert bad.returncode == 1
    assert "caches 2.00000000 but its postings sum to 3.00000000" in bad.stderr
    assert bad.stdout.strip().endswith("1 problem(s) found")
