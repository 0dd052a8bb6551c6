"""Top-ups end to end: Heleket invoices, signed webhooks, the reconciler, and money counted once. A webhook is
answered once stored; the settler credits after the answer, so the tests wait for the inbox to drain."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from shopbot.db.queries import queries
from shopbot.errors import Refused
from shopbot.ledger.verify import verify_ledger
from tests.ledger.helpers import make_user
from tests.payments.helpers import inbox_drained, signed, webhook_payload
from tests.shop_harness import running_shop

D = Decimal


async def balance(shop, user_id: int) -> Decimal:  # type: ignore[no-untyped-def]
    return (await shop.shop.ledger.balance(user_id)).available


async def test_top_up_end_to_end_credits_once_and_tells_the_user(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        user = await make_user(shop.shop.pool, 42)
        invoice = await shop.shop.topups.create(user, D("15"))
        assert invoice.url.startswith("http") and invoice.amount == D("15.00")
        assert shop.heleket is not None
        shop.heleket.duplicate_webhooks()
        shop.heleket.pay(invoice.order_id)
        await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
        notice = await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == user)
        assert "15.00 USD" in notice.params["text"]
        await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)  # the duplicate, acknowledged
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("15")
        stored = await queries.invoices.invoice_by_order_id(shop.shop.pool, invoice.order_id)
        assert (stored["status"], stored["is_final"], stored["credited_amount"]) == ("paid", True, D("15"))
        assert (await verify_ledger(shop.shop.pool)).ok
        assert [c for c in shop.telegram.calls if c.method == "sendMessage"].__len__() == 1


async def test_both_wire_encodings_are_accepted(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        user = await make_user(shop.shop.pool, 43, first_name="Зоя")
        invoice = await shop.shop.topups.create(user, D("2"))
        shop.heleket.unicode_escapes()
        shop.heleket.pay(invoice.order_id)
        await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("2")


async def test_overpayment_and_underpayment_follow_the_policies(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        user = await make_user(shop.shop.pool, 44)
        over = await shop.shop.topups.create(user, D("10"))
        shop.heleket.overpay(over.order_id)
        await shop.heleket.wait_for_webhook("paid_over", order_id=over.order_id)
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("10")  # credit_invoice_amount: the surplus is kept
        under = await shop.shop.topups.create(user, D("10"))
        shop.heleket.underpay(under.order_id)
        await shop.heleket.wait_for_webhook("wrong_amount_waiting", order_id=under.order_id)
        shop.heleket.expire(under.order_id)
        await shop.heleket.wait_for_webhook("wrong_amount", order_id=under.order_id)
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("10")  # hold_for_operator: nothing more credited
        stored = await queries.invoices.invoice_by_id(shop.shop.pool, under.id)
        assert stored["needs_attention"].startswith("underpaid")


async def test_underpayment_can_credit_what_was_paid(database_url: str) -> None:
    async with running_shop(database_url, heleket=True, heleket_keys={"underpayment": "credit_paid_amount"}) as shop:
        assert shop.heleket is not None
        user = await make_user(shop.shop.pool, 45)
        under = await shop.shop.topups.create(user, D("10"))
        shop.heleket.underpay(under.order_id, amount=D("4"))
        shop.heleket.expire(under.order_id)
        await shop.heleket.wait_for_webhook("wrong_amount", order_id=under.order_id)
        await inbox_drained(shop.shop.pool)
        assert D("3.9") <= await balance(shop, user) <= D("4")


async def test_a_missed_webhook_is_credited_by_the_reconciler(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        user = await make_user(shop.shop.pool, 46)
        invoice = await shop.shop.topups.create(user, D("7.50"))
        shop.heleket.silence_webhooks()
        shop.heleket.pay(invoice.order_id)
        await anyio.sleep(0.2)
        assert await balance(shop, user) == D("0")
        counts = await shop.shop.reconciler.reconcile_once()
        assert counts == {"credited": 1}
        assert await balance(shop, user) == D("7.50")
        assert await shop.shop.reconciler.reconcile_once() == {}  # final now: not asked again


async def test_an_interrupted_create_is_finished_by_the_reconciler(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        user = await make_user(shop.shop.pool, 47)
        # Heleket makes the invoice but every answer is lost: the client gives up, our row stays 'creating'.
        for _ in range(4):
            shop.heleket.fail_next("/v1/payment", status=502, after_processing=True)
        with pytest.raises(Refused, match="unavailable"):
            await shop.shop.topups.create(user, D("5"))
        row = (await shop.shop.pool.fetch("SELECT order_id, status, uuid FROM invoices"))[0]
        assert (row["status"], row["uuid"]) == ("creating", None)
        assert len(shop.heleket.invoices) == 1  # retries re-sent the same order_id: one invoice
        await shop.shop.reconciler.reconcile_once()
        fixed = await queries.invoices.invoice_by_order_id(shop.shop.pool, row["order_id"])
        assert fixed["uuid"] is not None and fixed["status"] == "check"


@pytest.mark.parametrize(("amount", "reason"), [(D("0.10"), "too_small"), (D("5000"), "too_large")])
async def test_top_up_amounts_outside_the_limits_are_refused(database_url: str, amount: Decimal, reason: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        user = await make_user(shop.shop.pool, 48)
        with pytest.raises(Refused) as refused:
            await shop.shop.topups.create(user, amount)
        assert refused.value.reason == reason
        assert await shop.shop.pool.fetchval("SELECT count(*) FROM invoices") == 0


async def test_a_shop_without_heleket_refuses_top_ups_clearly(database_url: str) -> None:
    async with running_shop(database_url) as shop:
        user = await make_user(shop.shop.pool, 49)
        with pytest.raises(Refused, match="not set up"):
            await shop.shop.topups.create(user, D("5"))
        response = await shop.http.post("/webhook/heleket", content=signed(webhook_payload("x", "y", "1")))
        assert response.status_code == 503


async def test_thousands_of_concurrent_webhooks_with_duplicates_credit_each_invoice_once(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        pool = shop.shop.pool
        users = [await make_user(pool, 1000 + n) for n in range(20)]
        bodies: list[bytes] = []
        expected = {user: D(0) for user in users}
        for n in range(1000):
            user = users[n % len(users)]
            amount = D(1 + n % 7) + D("0.25")
            row = await queries.invoices.create_invoice(pool, user, amount, "USD", f"b{n}", 3600)
            # Paid at Heleket too (which each webhook is checked against), its own webhooks not sent.
            invoice = shop.heleket.open_invoice(row["order_id"], amount)
            shop.heleket.pay(row["order_id"])
            bodies.append(signed(webhook_payload(row["order_id"], invoice.uuid, amount)))
            expected[user] += amount
        deliveries = bodies * 5  # each paid webhook once, and four duplicates
        limit = anyio.Semaphore(32)
        statuses: list[int] = []

        async def deliver(body: bytes) -> None:
            async with limit:
                statuses.append((await shop.http.post("/webhook/heleket", content=body)).status_code)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for body in deliveries[::2] + deliveries[1::2]:
                    group.start_soon(deliver, body)
        assert statuses.count(200) == 5000, sorted(set(statuses))
        # Each event stored once, whatever raced; the settler credits each once.
        assert await pool.fetchval("SELECT count(*) FROM heleket_inbox") == 1000
        with anyio.fail_after(60):
            while await pool.fetchval("SELECT count(*) FROM heleket_inbox WHERE state = 'pending'"):
                await anyio.sleep(0.1)
        outcomes = await pool.fetch("SELECT state, outcome, count(*) AS n FROM heleket_inbox GROUP BY 1, 2")
        assert [(r["state"], r["outcome"], r["n"]) for r in outcomes] == [("settled", "credited", 1000)]
        for user, amount in expected.items():
            assert await balance(shop, user) == amount
        assert await pool.fetchval("SELECT count(*) FROM movements") == 1000
        report = await verify_ledger(pool)
        assert report.ok, report.problems
