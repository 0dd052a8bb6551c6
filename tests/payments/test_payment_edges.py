"""Payments in, at the edges (issue 13, items 4, 7, 8): a signed webhook is not a payment, one event cannot
swallow a credit, and one user's invoice flood (or Heleket's 429s) cannot stop anyone else's top-up. Webhooks are
stored and answered, then settled by the settler: the tests wait for it (helpers.settled, inbox_drained)."""

from __future__ import annotations

from decimal import Decimal

import anyio

from shopbot.config.schema import CircuitBreakerConfig, RateLimitConfig
from shopbot.errors import Refused
from shopbot.ledger.verify import verify_ledger
from tests.bot.test_bot_account import Customer
from tests.ledger.helpers import make_user
from tests.payments.helpers import inbox_drained, settled, signed, webhook_payload
from tests.shop_harness import ShopUnderTest, running_shop

D = Decimal
INFO = "/v1/payment/info"


async def balance(shop: ShopUnderTest, user_id: int) -> Decimal:
    return (await shop.shop.ledger.balance(user_id)).available


def requests_to(shop: ShopUnderTest, path: str) -> int:
    assert shop.heleket is not None
    return sum(1 for call in shop.heleket.calls if call.path == path)


async def events(shop: ShopUnderTest) -> list[tuple[str, bool, str]]:
    rows = await shop.shop.pool.fetch("SELECT status, is_final, source FROM invoice_events ORDER BY id")
    return [(r["status"], r["is_final"], r["source"]) for r in rows]


async def test_a_signed_paid_webhook_for_an_unpaid_invoice_credits_nothing_and_the_real_payment_credits_at_once(
    database_url: str,
) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.topups.client is not None
        user = await make_user(shop.shop.pool, 501)
        invoice = await shop.shop.topups.create(user, D("10"))
        uuid = shop.heleket.invoice_by_order(invoice.order_id).uuid

        # Heleket's own test webhook for the real invoice: signed with the payment key, says `paid`.
        await shop.shop.topups.client.test_webhook(
            url_callback=shop.shop.config.web.public_url + "/webhook/heleket",
            currency="USD",
            network="tron",
            status="paid",
            uuid=uuid,
        )
        test = await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id, ok=None)
        assert (test.status_code, test.attempt) == (200, 1)  # answered, so Heleket does not retry it for ever
        assert await settled(shop.shop.pool, uuid) == ("refused", "unconfirmed")  # Heleket says `check`
        # A signed body replayed (or signed by anyone holding the key) for the same unpaid invoice: a refused
        # event does not make it a repeat, so Heleket is asked again, and denies it again.
        replay = await shop.http.post("/webhook/heleket", content=signed(webhook_payload(invoice.order_id, uuid, "10")))
        assert (replay.status_code, replay.json()["stored"]) == (200, "new")
        assert await settled(shop.shop.pool, uuid) == ("refused", "unconfirmed")
        assert await balance(shop, user) == D("0")
        # What Heleket said (still `check`) may be recorded; nothing that could make the genuine webhook a duplicate.
        assert [event for event in await events(shop) if event[0] != "check"] == []

        # Now the payer really pays: Heleket's genuine webhook (the same event as the two before) is stored and
        # credited by the settler at once, no reconciler pass.
        shop.heleket.pay(invoice.order_id)
        genuine = await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
        assert genuine.attempt == 1
        assert await settled(shop.shop.pool, uuid) == ("settled", "credited")
        assert await balance(shop, user) == D("10")
        assert (await events(shop))[-1] == ("paid", True, "webhook")
        report = await verify_ledger(shop.shop.pool)
        assert report.ok, report.problems


async def test_a_webhook_heleket_cannot_confirm_yet_is_answered_200_and_credited_when_the_settler_tries_again(
    database_url: str,
) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.topups.client is not None
        shop.shop.topups.client.backoff = 0.01
        user = await make_user(shop.shop.pool, 502)
        invoice = await shop.shop.topups.create(user, D("5"))
        for _ in range(4):  # the client's first attempt and its three retries
            shop.heleket.fail_next(INFO, status=503)
        shop.heleket.pay(invoice.order_id)
        first = await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id, ok=None)
        assert (first.status_code, first.attempt) == (200, 1)  # stored: Heleket need not send it again
        uuid = shop.heleket.invoice_by_order(invoice.order_id).uuid
        # Heleket could not be asked: nothing applied, the event waits in the inbox and is tried again.
        assert await settled(shop.shop.pool, uuid) == ("pending", "unavailable")
        assert await balance(shop, user) == D("0")
        assert await settled(shop.shop.pool, uuid, state="settled") == ("settled", "credited")
        assert await shop.shop.pool.fetchval("SELECT attempts FROM heleket_inbox") == 2
        assert await balance(shop, user) == D("5")
        assert await events(shop) == [("paid", True, "webhook")]
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_non_final_paid_seen_first_does_not_swallow_the_final_paid(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        user = await make_user(shop.shop.pool, 503)
        invoice = await shop.shop.topups.create(user, D("12"))
        shop.heleket.pay(invoice.order_id, final=False)  # `paid`, but not final yet
        early = await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
        assert early.payload["is_final"] is False
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("0")
        shop.heleket.finalize(invoice.order_id)
        final = await shop.heleket.wait_for_webhook("paid", order_id=invoice.order_id)
        assert final.payload["is_final"] is True
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("12")
        await shop.shop.reconciler.reconcile_once()
        assert await balance(shop, user) == D("12")  # exactly once
        assert await events(shop) == [("paid", False, "webhook"), ("paid", True, "webhook")]
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_one_user_creating_invoices_in_a_loop_is_stopped_at_the_limit_with_a_clear_answer(
    database_url: str,
) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None
        ann = Customer(shop, 504)
        screens = [await ann.send(f"/recharge {5 + n}") for n in range(6)]
        assert all("Top-up #" in screen.text for screen in screens[:3])
        for refused in screens[3:]:
            assert "You already have 3 unpaid top-ups open" in refused.text
            assert "Pay one of them" in refused.text and "wait until one expires" in refused.text
            assert "The first one expires at" in refused.text
            pays = [button for button in refused.buttons if button.url]  # the first to expire first
            assert [button.text.split(": ")[1] for button in pays] == ["5.00 USD", "6.00 USD", "7.00 USD"]
        assert await shop.shop.pool.fetchval("SELECT count(*) FROM invoices") == 3
        assert len(shop.heleket.invoices) == 3

        # Paying one frees a place.
        first = shop.heleket.invoice_by_order(
            await shop.shop.pool.fetchval("SELECT order_id FROM invoices ORDER BY id LIMIT 1")
        )
        shop.heleket.pay(first.uuid)
        await shop.heleket.wait_for_webhook("paid", uuid=first.uuid)
        await ann.next_message()  # the credit notice
        assert "Top-up #" in (await ann.send("/recharge 20")).text


async def test_a_flood_of_open_invoices_cannot_hide_a_lost_webhook_from_the_reconciler(database_url: str) -> None:
    async with running_shop(database_url, heleket=True) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        pool = shop.shop.pool
        # 150 older invoices nobody pays (more than one reconciler pass takes), from 50 other users.
        for n in range(150):
            user = await make_user(pool, 10_000 + n % 50)
            row = await pool.fetchrow(
                "INSERT INTO invoices (order_id, user_id, amount, currency, status, expires_at) "
                "VALUES ($1, $2, 5, 'USD', 'check', now() + interval '1 hour') "
                "RETURNING order_id",
                f"flood-{n}",
                user,
            )
            shop.heleket.open_invoice(row["order_id"], D("5"))
        zoya = await make_user(pool, 505)
        invoice = await shop.shop.topups.create(zoya, D("9"))
        shop.heleket.silence_webhooks()  # Zoya's webhook is lost
        shop.heleket.pay(invoice.order_id)
        for _ in range(3):  # three passes: minutes of the invoice's hour
            await shop.shop.reconciler.reconcile_once()
        assert await balance(shop, zoya) == D("9")
        assert (await verify_ledger(pool)).ok


async def test_heleket_429s_pause_calls_and_do_not_open_its_circuit(database_url: str) -> None:
    config = CircuitBreakerConfig(failure_threshold=2, timeout=30, success_threshold=1)
    async with running_shop(database_url, heleket=True, circuit_breaker=config) as shop:
        assert shop.heleket is not None and shop.shop.reconciler is not None
        user = await make_user(shop.shop.pool, 506)
        invoices = [await shop.shop.topups.create(user, D(n)) for n in (5, 6)]
        shop.heleket.rate_limit(retry_after="1")
        reasons = set()
        for _ in range(4):
            try:
                await shop.shop.topups.create(user, D("7"))
            except Refused as refused:
                reasons.add(refused.reason)
        assert reasons <= {"unavailable"}
        # The reconciler stops its pass at the first 429 rather than asking about every invoice.
        asked = requests_to(shop, INFO)
        assert await shop.shop.reconciler.reconcile_once() == {"paused": 1}
        assert requests_to(shop, INFO) - asked <= 1
        circuit = (await shop.http.get("/health/detailed")).json()["circuits"]["heleket"]
        assert circuit == "closed"  # Heleket is up and said "slow down": top-ups stop for nobody beyond that

        shop.heleket.rate_limit(False)
        await anyio.sleep(1.1)  # Retry-After honoured
        shop.heleket.pay(invoices[0].order_id)
        await shop.heleket.wait_for_webhook("paid", order_id=invoices[0].order_id)
        await inbox_drained(shop.shop.pool)
        assert await balance(shop, user) == D("5")
        assert (await verify_ledger(shop.shop.pool)).ok


async def test_check_payment_is_a_payment_action_and_asks_heleket_once_per_30_s(database_url: str) -> None:
    limits = RateLimitConfig(
        messages_per_minute=1000,
        operations_per_minute=1000,
        payments_per_minute=4,
        burst=0,
        global_messages_per_minute=100_000,
        webhook_per_minute=100_000,
        new_user_multiplier=1,
    )
    async with running_shop(database_url, heleket=True, rate_limit=limits) as shop:
        assert shop.heleket is not None
        ann = Customer(shop, 507)
        invoice = await ann.send("/recharge 5")
        answers = [await ann.press(invoice, "Check payment") for _ in range(8)]
        texts = [answer.params["text"] for answer in answers]
        # The top-up took one of four payment actions; three presses are answered (Heleket asked once), the
        # rest are told to wait.
        assert [text.startswith("⏳ Not paid yet") for text in texts] == [True] * 3 + [False] * 5, texts
        assert all(text.startswith("Too many payment actions in a row") for text in texts[3:]), texts
        assert requests_to(shop, INFO) == 1
