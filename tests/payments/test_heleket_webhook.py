"""Everything Heleket's webhook endpoint may be sent: each bad request is refused and moves nothing; a verified one
is stored, answered 200, and settled by the settler after the answer (Heleket's payment/info decides)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import anyio
import asyncpg
import pytest

from shopbot.config.schema import WebConfig
from shopbot.db.queries import queries
from shopbot.ledger.verify import verify_ledger
from tests.ledger.helpers import make_user
from tests.payments.helpers import settled, signed, webhook_payload
from tests.shop_harness import ShopUnderTest, free_port, running_shop

D = Decimal
UUID = "5d6ba6fe-6b63-4b8e-9a21-1f2c3d4e5f60"
TEN = D("10")  # the invoice amount, unless a test says otherwise


async def open_invoice(pool: asyncpg.Pool, user_id: int = 7, amount: Decimal = TEN) -> str:
    await make_user(pool, user_id)
    row = await queries.invoices.create_invoice(pool, user_id, amount, "USD", "t", 3600)
    return str(row["order_id"])


def at_heleket(shop: ShopUnderTest, order_id: str, amount: Decimal = TEN, *, paid: bool = True) -> str:
    """The same invoice at Heleket (paid unless told otherwise), which every webhook is checked against;
    its own webhooks are not sent (no url_callback). Returns Heleket's uuid."""
    assert shop.heleket is not None
    invoice = shop.heleket.open_invoice(order_id, amount)
    if paid:
        shop.heleket.pay(order_id)
    return invoice.uuid


async def assert_nothing_moved(shop: ShopUnderTest, *, stored: int = 0) -> None:
    """No money and no payment state moved; `stored` inbox events (verified bodies the settler refused)."""
    assert await shop.shop.pool.fetchval("SELECT count(*) FROM movements") == 0
    assert await shop.shop.pool.fetchval("SELECT count(*) FROM invoice_events") == 0
    assert await shop.shop.pool.fetchval("SELECT count(*) FROM heleket_inbox") == stored


@asynccontextmanager
async def reconciler_aside(shop: ShopUnderTest) -> AsyncIterator[None]:
    """Hold the reconciler's turn, as a second instance reconciling would: these tests are about what a webhook
    does, and the reconciler (whose first pass may still run as the shop starts) must not credit a test's
    invoice before its webhook does. Taken once the pass under way, if any, has ended."""
    async with shop.shop.pool.acquire() as conn:
        with anyio.fail_after(30):
            while not await queries.invoices.try_reconciler_lock(conn):
                await anyio.sleep(0.02)
        try:
            yield
        finally:
            await queries.invoices.reconciler_unlock(conn)


@pytest.fixture
async def shop(database_url: str):  # type: ignore[no-untyped-def]
    async with running_shop(database_url, heleket=True) as shop, reconciler_aside(shop):
        yield shop


async def post(shop: ShopUnderTest, body: bytes, **headers: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await shop.http.post("/webhook/heleket", content=body, headers=headers)
    return response.status_code, response.json()


async def test_a_valid_paid_webhook_credits(shop: ShopUnderTest) -> None:
    order_id = await open_invoice(shop.shop.pool)
    uuid = at_heleket(shop, order_id)
    status, body = await post(shop, signed(webhook_payload(order_id, uuid, "10")))
    assert (status, body) == (200, {"ok": True, "stored": "new"})
    assert await settled(shop.shop.pool, uuid) == ("settled", "credited")
    assert (await shop.shop.ledger.balance(7)).available == D("10")
    # The same webhook again: stored already, answered 200, and nothing more happens.
    assert await post(shop, signed(webhook_payload(order_id, uuid, "10"))) == (200, {"ok": True, "stored": "repeat"})
    assert await shop.shop.pool.fetchval("SELECT count(*) FROM heleket_inbox") == 1
    assert (await shop.shop.ledger.balance(7)).available == D("10")
    assert (await verify_ledger(shop.shop.pool)).ok


def cancelled_turned_paid(payload: dict) -> bytes:  # type: ignore[type-arg]
    """A genuine 'cancel' webhook edited to say 'paid'."""
    return signed({**payload, "status": "cancel"}).replace(b'"status":"cancel"', b'"status":"paid"')


@pytest.mark.parametrize(
    ("mangle", "status", "reason"),
    [
        (lambda p: signed(p).replace(b'"sign":"', b'"sign":"0'), 401, "bad_signature"),
        (lambda p: signed(p)[:-1] + b',"amount":"99.00000000"}', 401, "bad_signature"),
        (cancelled_turned_paid, 401, "bad_signature"),
        (lambda p: json.dumps(p).encode(), 401, "missing_signature"),
        (lambda p: signed(p, key="some-other-key"), 401, "bad_signature"),
        (lambda p: b"this is not json", 400, "not_json"),
        (lambda p: b"[1, 2, 3]", 400, "not_an_object"),
        (lambda p: b"", 400, "not_json"),
        (lambda p: signed({k: v for k, v in p.items() if k not in ("uuid", "amount")}), 400, "bad_fields"),
        (lambda p: signed({**p, "is_final": "yes"}), 400, "bad_fields"),
        (lambda p: signed({**p, "amount": ["10"]}), 400, "bad_fields"),
        (lambda p: signed({**p, "type": "payout"}), 400, "unsupported_type"),
    ],
)
async def test_forged_and_malformed_webhooks_are_refused(
    shop: ShopUnderTest,
    mangle,
    status: int,  # type: ignore[no-untyped-def]
    reason: str,
) -> None:
    order_id = await open_invoice(shop.shop.pool)
    payload = webhook_payload(order_id, UUID, "10")
    got_status, body = await post(shop, mangle(payload))
    assert (got_status, body["error"]) == (status, reason)
    await assert_nothing_moved(shop)


async def test_a_huge_body_is_refused_without_reading_it_all(shop: ShopUnderTest) -> None:
    # Announce 10 MB, send 1 KB: the answer must come without waiting for the rest.
    port = shop.shop.web_port
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(
            b"POST /webhook/heleket HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n{" + b" " * 1024
        )
        with anyio.fail_after(5):
            head = await stream.receive()
    assert head.startswith(b"HTTP/1.1 413")
    assert b"body_too_large" in head
    await assert_nothing_moved(shop)


async def test_a_huge_chunked_body_is_refused(shop: ShopUnderTest) -> None:
    # No Content-Length to go by: the limit is counted as the body streams in.
    chunk = b" " * 8192
    async with await anyio.connect_tcp("127.0.0.1", shop.shop.web_port) as stream:
        await stream.send(
            b"POST /webhook/heleket HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\n{\r\n"
            + (b"2000\r\n" + chunk + b"\r\n") * 9
        )
        with anyio.fail_after(5):
            head = await stream.receive()
    assert head.startswith(b"HTTP/1.1 413")
    await assert_nothing_moved(shop)


async def test_an_unknown_order_is_stored_and_looked_for_again_later(shop: ShopUnderTest) -> None:
    status, body = await post(shop, signed(webhook_payload("topup-999-none", UUID, "10")))
    assert (status, body["stored"]) == (200, "new")
    # Our row may not be visible yet: the settler looks again later (with a backoff), and moves nothing.
    assert await settled(shop.shop.pool, UUID) == ("pending", "unknown_invoice")
    assert shop.heleket is not None and not [c for c in shop.heleket.calls if c.path == "/v1/payment/info"]
    await assert_nothing_moved(shop, stored=1)


@pytest.mark.parametrize(("field", "value"), [("amount", "100.00000000"), ("currency", "EUR")])
async def test_a_signed_status_that_disagrees_with_the_invoice_moves_nothing(
    shop: ShopUnderTest, field: str, value: str
) -> None:
    order_id = await open_invoice(shop.shop.pool)
    status, body = await post(shop, signed({**webhook_payload(order_id, UUID, "10"), field: value}))
    assert (status, body["stored"]) == (200, "new")
    assert await settled(shop.shop.pool, UUID) == ("refused", "mismatch")
    await assert_nothing_moved(shop, stored=1)


async def test_a_replayed_paid_after_a_refund_credits_nothing_more(shop: ShopUnderTest) -> None:
    assert shop.heleket is not None
    order_id = await open_invoice(shop.shop.pool)
    uuid = at_heleket(shop, order_id)
    paid = signed(webhook_payload(order_id, uuid, "10", "paid"))
    assert (await post(shop, paid))[0] == 200
    assert await settled(shop.shop.pool, uuid, "paid") == ("settled", "credited")
    shop.heleket.refund(order_id)
    refunded = signed(webhook_payload(order_id, uuid, "10", "refund_paid"))
    assert (await post(shop, refunded))[0] == 200
    assert await settled(shop.shop.pool, uuid, "refund_paid") == ("settled", "recorded")
    assert (await post(shop, paid)) == (200, {"ok": True, "stored": "repeat"})  # acted on: nothing to settle
    invoice = await queries.invoices.invoice_by_order_id(shop.shop.pool, order_id)
    assert invoice["status"] == "refund_paid"
    assert (await shop.shop.ledger.balance(7)).available == D("10")
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_a_paid_over_after_paid_does_not_credit_twice(shop: ShopUnderTest) -> None:
    order_id = await open_invoice(shop.shop.pool)
    uuid = at_heleket(shop, order_id)
    await post(shop, signed(webhook_payload(order_id, uuid, "10", "paid")))
    assert await settled(shop.shop.pool, uuid, "paid") == ("settled", "credited")
    # Heleket still says `paid`: a signed `paid_over` it does not bear out is answered, and applies nothing.
    status, body = await post(shop, signed(webhook_payload(order_id, uuid, "10", "paid_over")))
    assert (status, body["stored"]) == (200, "new")
    assert await settled(shop.shop.pool, uuid, "paid_over") == ("refused", "unconfirmed")
    assert (await shop.shop.ledger.balance(7)).available == D("10")
    assert (await verify_ledger(shop.shop.pool)).ok


async def test_non_final_statuses_credit_nothing_and_only_confirmed_ones_are_recorded(shop: ShopUnderTest) -> None:
    assert shop.heleket is not None
    order_id = await open_invoice(shop.shop.pool)
    uuid = at_heleket(shop, order_id, paid=False)

    async def say(status_name: str) -> tuple[int, str, str]:
        status, _ = await post(shop, signed(webhook_payload(order_id, uuid, "10", status_name, is_final=False)))
        return (status, *await settled(shop.shop.pool, uuid, status_name, is_final=False))

    assert await say("check") == (200, "settled", "recorded")
    assert await say("confirm_check") == (200, "refused", "unconfirmed")  # Heleket still says `check`
    shop.heleket.underpay(order_id)
    assert await say("wrong_amount_waiting") == (200, "settled", "recorded")
    assert await shop.shop.pool.fetchval("SELECT count(*) FROM movements") == 0
    statuses = await shop.shop.pool.fetch("SELECT status FROM invoice_events ORDER BY id")
    assert [r["status"] for r in statuses] == ["check", "wrong_amount_waiting"]


async def test_only_heleket_addresses_may_call_when_an_allow_list_is_set(database_url: str) -> None:
    port = free_port()
    web = WebConfig(host="127.0.0.1", port=port, public_url=f"http://127.0.0.1:{port}", trusted_proxies=("127.0.0.1",))
    async with (
        running_shop(database_url, heleket=True, heleket_keys={"allowed_ips": ("31.133.220.8",)}, web=web) as shop,
        reconciler_aside(shop),
    ):
        order_id = await open_invoice(shop.shop.pool)
        body = signed(webhook_payload(order_id, at_heleket(shop, order_id), "10"))
        # From us (a trusted proxy) with no forwarded address: our own address, not allowed.
        assert (await post(shop, body))[0] == 403
        # A client cannot pick its address by sending the header through the proxy.
        assert (await post(shop, body, **{"X-Forwarded-For": "31.133.220.8, 198.51.100.7"}))[0] == 403
        await assert_nothing_moved(shop)
        status, answer = await post(shop, body, **{"X-Forwarded-For": "31.133.220.8"})
        assert (status, answer["stored"]) == (200, "new")
        assert await settled(shop.shop.pool, await shop.shop.pool.fetchval("SELECT uuid FROM heleket_inbox")) == (
            "settled",
            "credited",
        )
        assert (await shop.shop.ledger.balance(7)).available == D("10")
