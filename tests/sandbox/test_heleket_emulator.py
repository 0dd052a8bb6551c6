"""The Heleket emulator's payments and webhooks, received over real HTTP and checked with our verifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopbot.payments.heleket import HeleketClient
from shopbot.payments.heleket_wire import CurrencyOption, HeleketWebhook, decode_webhook
from shopbot.payments.signing import verify_webhook
from shopbot.sandbox.heleket import HeleketEmulator, WebhookNotDelivered, serve_heleket_emulator
from shopbot.web.asgi import serve_asgi

MERCHANT = "8b03432e-385b-4670-8d06-064591096795"
KEY = "TEST_PAYMENT_KEY_0123456789abcdef"


@dataclass
class Receiver:
    """The shop's webhook endpoint, as far as these tests need one."""

    url: str = ""
    answers: list[int] = field(default_factory=list)  # statuses to answer with first; then 200
    bodies: list[bytes] = field(default_factory=list)  # every body received, answered or not

    def webhooks(self) -> list[HeleketWebhook]:
        return [decode_webhook(verify_webhook(body, KEY)) for body in self.bodies]

    async def wait(self, count: int, timeout: float = 3.0) -> list[HeleketWebhook]:
        with anyio.fail_after(timeout):
            while len(self.bodies) < count:
                await anyio.sleep(0.01)
        return self.webhooks()


@dataclass
class World:
    emulator: HeleketEmulator
    client: HeleketClient
    receiver: Receiver
    clock: list[float]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = [1_700_000_000.0]
    emulator = HeleketEmulator(
        merchant_uuid=MERCHANT, api_key=KEY, webhook_retry_seconds=0.02, max_webhook_attempts=3, clock=lambda: clock[0]
    )
    receiver = Receiver()

    async def receive(request: Request) -> Response:
        receiver.bodies.append(await request.body())
        return Response("ok", status_code=receiver.answers.pop(0) if receiver.answers else 200)

    shop = Starlette(routes=[Route("/heleket/webhook", receive, methods=["POST"])])
    async with anyio.create_task_group() as group:
        port = await group.start(serve_heleket_emulator, emulator)
        shop_port = await group.start(
            lambda task_status: serve_asgi(
                shop, host="127.0.0.1", port=0, graceful_seconds=0.5, task_status=task_status
            )
        )
        receiver.url = f"http://127.0.0.1:{shop_port}/heleket/webhook"
        async with HeleketClient(
            base_url=f"http://127.0.0.1:{port}", merchant_uuid=MERCHANT, api_key=KEY, backoff=0.01
        ) as client:
            yield World(emulator, client, receiver, clock)
        group.cancel_scope.cancel()


async def _invoice(world: World, order_id: str, amount: str = "3", **options: object) -> str:
    invoice = await world.client.create_invoice(
        amount=Decimal(amount), currency="USD", order_id=order_id, url_callback=world.receiver.url, **options
    )  # type: ignore[arg-type]
    return invoice.uuid


async def test_a_full_payment_is_paid_and_final_in_a_signed_webhook(world: World) -> None:
    uuid = await _invoice(world, "stars-1", additional_data="pack=100⭐ Звёзды https://t.me/x")
    world.emulator.pay("stars-1", currency="USDT", network="ton")
    [webhook] = await world.receiver.wait(1)
    assert (webhook.type, webhook.uuid, webhook.order_id) == ("payment", uuid, "stars-1")
    assert (webhook.status, webhook.is_final) == ("paid", True)
    assert (webhook.amount, webhook.currency, webhook.payer_currency, webhook.network) == (
        Decimal("3"),
        "USD",
        "USDT",
        "ton",
    )
    assert webhook.payment_amount == webhook.payer_amount == Decimal("3")
    assert webhook.commission == Decimal("0.06") and webhook.merchant_amount == Decimal("2.94")
    assert webhook.payment_amount_usd == Decimal("3.00") and webhook.txid
    assert webhook.additional_data == "pack=100⭐ Звёзды https://t.me/x"
    # Heleket's own wire form: raw UTF-8, escaped slashes, money as strings, sign last.
    body = world.receiver.bodies[0]
    assert "⭐ Звёзды https:\\/\\/t.me".encode() in body and b'"amount":"3.00000000"' in body
    assert body.endswith(f'"sign":"{webhook.sign}"}}'.encode())
    info = await world.client.payment_info(order_id="stars-1")
    assert (info.status, info.is_final, info.payment_amount) == ("paid", True, Decimal("3"))


async def test_the_payer_picks_a_coin_from_the_allowed_currencies(world: World) -> None:
    options = [CurrencyOption(currency="USDT", network="ton"), CurrencyOption(currency="TON", network="ton")]
    await _invoice(world, "stars-picks", amount="3.00", currencies=options)
    with pytest.raises(ValueError, match="not among the invoice's currencies"):
        world.emulator.pay("stars-picks", currency="BTC", network="btc")
    paid = world.emulator.pay("stars-picks", currency="TON")
    assert (paid.payer_currency, paid.network, paid.payer_amount, paid.status) == ("TON", "ton", Decimal(1), "paid")
    [webhook] = await world.receiver.wait(1)
    assert (webhook.payer_currency, webhook.payment_amount, webhook.amount) == ("TON", Decimal(1), Decimal("3"))


async def test_confirm_check_comes_first_and_is_not_final(world: World) -> None:
    await _invoice(world, "stars-2")
    world.emulator.pay("stars-2", confirm_check=True)
    first, second = await world.receiver.wait(2)
    assert (first.status, first.is_final, first.payment_amount_usd) == ("confirm_check", False, Decimal(0))
    assert (second.status, second.is_final) == ("paid", True)


async def test_an_overpayment_is_paid_over(world: World) -> None:
    await _invoice(world, "stars-3", to_currency="USDT", network="tron")
    world.emulator.overpay("stars-3", amount=Decimal("3.5"))
    [webhook] = await world.receiver.wait(1)
    assert (webhook.status, webhook.is_final) == ("paid_over", True)
    assert (webhook.payment_amount, webhook.payer_amount) == (Decimal("3.5"), Decimal("3"))


async def test_an_underpayment_waits_for_a_top_up_then_is_paid(world: World) -> None:
    await _invoice(world, "stars-4")
    world.emulator.underpay("stars-4", amount=Decimal("1"))
    world.emulator.pay("stars-4")  # the rest
    waiting, paid = await world.receiver.wait(2)
    assert (waiting.status, waiting.is_final, waiting.payment_amount) == ("wrong_amount_waiting", False, Decimal(1))
    assert (paid.status, paid.is_final, paid.payment_amount) == ("paid", True, Decimal(3))


async def test_an_underpayment_without_top_ups_is_a_final_wrong_amount(world: World) -> None:
    await _invoice(world, "stars-5", is_payment_multiple=False)
    world.emulator.underpay("stars-5")
    [webhook] = await world.receiver.wait(1)
    assert (webhook.status, webhook.is_final, webhook.payment_amount) == ("wrong_amount", True, Decimal("1.5"))
    with pytest.raises(ValueError, match="final"):
        world.emulator.pay("stars-5")


async def test_expiry_cancels_an_unpaid_invoice_and_ends_a_waiting_one_as_wrong_amount(world: World) -> None:
    await _invoice(world, "stars-6")
    await _invoice(world, "stars-7")
    world.emulator.underpay("stars-7")
    assert world.emulator.expire("stars-6").status == "cancel"
    # Different invoices are delivered in parallel, so their webhooks may arrive in either order.
    cancelled, waiting = sorted(await world.receiver.wait(2), key=lambda webhook: webhook.order_id)
    assert (cancelled.order_id, cancelled.status, cancelled.is_final) == ("stars-6", "cancel", True)
    assert waiting.status == "wrong_amount_waiting"
    assert world.emulator.expire("stars-7").status == "wrong_amount"
    *_, ended = await world.receiver.wait(3)
    assert (ended.order_id, ended.status, ended.is_final) == ("stars-7", "wrong_amount", True)


async def test_the_lifetime_runs_out_on_the_clock(world: World) -> None:
    await _invoice(world, "stars-8", lifetime=300)
    world.clock[0] += 299
    assert (await world.client.payment_info(order_id="stars-8")).status == "check"
    world.clock[0] += 1
    [webhook] = await world.receiver.wait(1)  # sent by the emulator itself, without a request
    assert (webhook.status, webhook.is_final) == ("cancel", True)
    assert (await world.client.payment_info(order_id="stars-8")).status == "cancel"
    # is_refresh reopens an expired invoice under the same order_id with a new address and lifetime.
    refreshed = await world.client.create_invoice(
        amount=Decimal(3), currency="USD", order_id="stars-8", is_refresh=True
    )
    assert (refreshed.status, refreshed.is_final) == ("check", False)
    assert refreshed.expired_at == int(world.clock[0]) + 300


async def test_a_non_2xx_answer_is_retried_with_the_same_body(world: World) -> None:
    world.receiver.answers = [500, 503]
    await _invoice(world, "stars-9")
    world.emulator.pay("stars-9")
    delivery = await world.emulator.wait_for_webhook("paid", order_id="stars-9")
    assert delivery.attempt == 3
    assert len(set(world.receiver.bodies)) == 1 and len(world.receiver.bodies) == 3
    assert [d.status_code for d in world.emulator.deliveries] == [500, 503, 200]


async def test_dropped_attempts_are_retried_and_giving_up_is_recorded(world: World) -> None:
    world.emulator.fail_webhooks(1)
    await _invoice(world, "stars-10")
    world.emulator.pay("stars-10")
    delivery = await world.emulator.wait_for_webhook("paid")
    assert delivery.attempt == 2 and world.emulator.deliveries[0].error == "dropped by fail_webhooks"
    world.receiver.answers = [500, 500, 500]
    await _invoice(world, "stars-11")
    world.emulator.pay("stars-11")
    with pytest.raises(WebhookNotDelivered, match="stars-11 paid attempt 3 -> 500"):
        await world.emulator.wait_for_webhook("paid", order_id="stars-11", timeout=0.5)


async def test_duplicates_carry_the_same_signed_body(world: World) -> None:
    world.emulator.duplicate_webhooks(True)
    await _invoice(world, "stars-12")
    world.emulator.pay("stars-12")
    first, second = await world.receiver.wait(2)
    assert first == second and world.receiver.bodies[0] == world.receiver.bodies[1]
    # The emulator records a delivery once it has the answer, which may be just after the receiver saw it.
    await world.emulator.wait_for_webhook("paid", order_id="stars-12")
    await world.emulator.wait_for_webhook("paid", order_id="stars-12")
    assert [d.duplicate for d in world.emulator.deliveries] == [False, True]


async def test_unicode_escapes_change_the_body_but_not_the_signature(world: World) -> None:
    await _invoice(world, "stars-13", additional_data="Звёзды ⭐")
    await _invoice(world, "stars-14", additional_data="Звёзды ⭐")
    world.emulator.pay("stars-13")
    [raw] = await world.receiver.wait(1)
    world.emulator.unicode_escapes(True)
    world.emulator.pay("stars-14")
    _, escaped = await world.receiver.wait(2)
    assert "Звёзды".encode() in world.receiver.bodies[0]
    assert b"\\u0417\\u0432\\u0451\\u0437\\u0434\\u044b \\u2b50" in world.receiver.bodies[1]
    assert world.receiver.bodies[1].isascii()
    assert raw.additional_data == escaped.additional_data == "Звёзды ⭐"


async def test_silenced_webhooks_leave_only_the_api_to_tell(world: World) -> None:
    world.emulator.silence_webhooks(True)
    await _invoice(world, "stars-15")
    world.emulator.pay("stars-15")
    await anyio.sleep(0.2)
    assert world.receiver.bodies == [] and world.emulator.deliveries == []
    info = await world.client.payment_info(order_id="stars-15")
    assert (info.status, info.is_final) == ("paid", True)


async def test_a_test_webhook_is_signed_and_stores_nothing(world: World) -> None:
    await world.client.test_webhook(
        url_callback=world.receiver.url, currency="USDT", network="tron", status="paid", order_id="test-1"
    )
    [webhook] = await world.receiver.wait(1)
    assert (webhook.order_id, webhook.status, webhook.currency, webhook.network) == ("test-1", "paid", "USDT", "tron")
    assert world.emulator.invoices == {}


async def test_an_invoice_without_url_callback_sends_nothing(world: World) -> None:
    await world.client.create_invoice(amount=Decimal(3), currency="USD", order_id="quiet")
    world.emulator.pay("quiet")
    await anyio.sleep(0.1)
    assert world.receiver.bodies == []
    assert world.emulator.status_history("quiet") == ["check", "paid"]
