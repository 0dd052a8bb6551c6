"""Our Heleket client against the Heleket emulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import anyio
import httpx
import pytest

from shopbot.config.schema import CircuitBreakerConfig
from shopbot.errors import ShopbotError
from shopbot.guard.circuit import CircuitBreaker
from shopbot.payments.heleket import HeleketCircuitOpenError, HeleketClient, HeleketRejectedError, HeleketTemporaryError
from shopbot.payments.heleket_wire import CurrencyOption
from shopbot.payments.signing import sign_body
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.web.asgi import bind_listener

MERCHANT = "8b03432e-385b-4670-8d06-064591096795"
KEY = "TEST_PAYMENT_KEY_0123456789abcdef"
HOOK = "https://bot.example.com/heleket/webhook"


@dataclass
class Served:
    emulator: HeleketEmulator
    base_url: str

    def client(self, *, api_key: str = KEY, retries: int = 2, timeout: float = 5.0) -> HeleketClient:
        return HeleketClient(
            base_url=self.base_url,
            merchant_uuid=MERCHANT,
            api_key=api_key,
            timeout=timeout,
            retries=retries,
            backoff=0.01,
        )


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    emulator = HeleketEmulator(merchant_uuid=MERCHANT, api_key=KEY)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_heleket_emulator, emulator)
        yield Served(emulator, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[HeleketClient]:
    async with served.client() as client:
        yield client


async def test_an_invoice_is_created_and_found_by_uuid_and_by_order_id(client: HeleketClient) -> None:
    invoice = await client.create_invoice(
        amount=Decimal("1.50"),
        currency="USD",
        order_id="stars-1001",
        url_callback=HOOK,
        lifetime=900,
        additional_data="user=42; ⭐",
    )
    assert (invoice.order_id, invoice.amount, invoice.currency) == ("stars-1001", Decimal("1.50"), "USD")
    assert (invoice.status, invoice.payment_status, invoice.is_final) == ("check", "check", False)
    assert invoice.url == f"https://pay.heleket.com/pay/{invoice.uuid}"
    assert invoice.payer_currency is None and invoice.address is None  # the payer picks the coin on the page
    assert invoice.created_at is not None and invoice.created_at.endswith("+03:00")
    assert invoice.additional_data == "user=42; ⭐"
    assert await client.payment_info(uuid=invoice.uuid) == invoice
    assert await client.payment_info(order_id="stars-1001") == invoice


async def test_a_fixed_coin_gets_an_address_and_a_payer_amount(client: HeleketClient) -> None:
    invoice = await client.create_invoice(
        amount=Decimal("3"),
        currency="USD",
        order_id="stars-1002",
        to_currency="USDT",
        network="TON",
        currencies=[CurrencyOption(currency="USDT", network="ton")],
    )
    assert (invoice.payer_currency, invoice.network) == ("USDT", "ton")
    assert invoice.payer_amount == Decimal("3") and invoice.address is not None


async def test_the_same_order_id_returns_the_existing_invoice(served: Served, client: HeleketClient) -> None:
    first = await client.create_invoice(amount=Decimal("1.50"), currency="USD", order_id="stars-7")
    again = await client.create_invoice(amount=Decimal("99"), currency="USD", order_id="stars-7")
    assert again == first and again.amount == Decimal("1.50")
    assert len(served.emulator.invoices) == 1


async def test_a_lost_answer_and_a_5xx_are_retried_and_make_one_invoice(served: Served, client: HeleketClient) -> None:
    # Heleket creates the invoice but the answer is lost in a 502, then it fails outright with a 500.
    served.emulator.fail_next("/v1/payment", 502, b"<html>Bad Gateway</html>", after_processing=True)
    served.emulator.fail_next("/v1/payment", 500)
    invoice = await client.create_invoice(amount=Decimal("5"), currency="USD", order_id="stars-retry")
    assert len(served.emulator.invoices) == 1
    assert served.emulator.invoice_by_order("stars-retry").uuid == invoice.uuid
    creates = [call for call in served.emulator.calls if call.path == "/v1/payment"]
    assert [call.status for call in creates] == [502, 500, 200]
    assert len({call.body for call in creates}) == 1  # the same bytes each time, so the same order_id


async def test_a_timeout_is_retried_with_the_same_order_id(served: Served) -> None:
    served.emulator.delay_next("/v1/payment", 0.5)
    async with served.client(timeout=0.2) as client:
        invoice = await client.create_invoice(amount=Decimal("2"), currency="USD", order_id="stars-slow")
    with anyio.fail_after(2):  # the abandoned first request still completes on the server
        while len(served.emulator.calls) < 2:
            await anyio.sleep(0.02)
    assert list(served.emulator.invoices) == [invoice.uuid]
    retried, abandoned = served.emulator.calls  # the retry was answered first
    assert retried.body == abandoned.body and retried.response == abandoned.response


async def test_exhausted_retries_raise_the_temporary_kind(served: Served) -> None:
    for _ in range(3):
        served.emulator.fail_next("/v1/payment/info", 503)
    async with served.client(retries=2) as client:
        with pytest.raises(HeleketTemporaryError) as caught:
            await client.payment_info(order_id="anything")
    error = caught.value
    assert error.temporary and isinstance(error, ShopbotError)
    assert error.status_code == 503 and "gave up after 3 attempts" in str(error)
    assert "Server error, #1" in str(error) and "\n" not in str(error)


async def test_a_temporary_4xx_is_the_temporary_kind_but_not_retried(served: Served, client: HeleketClient) -> None:
    served.emulator.fail_next("/v1/payment", 400, {"state": 1, "message": "Gateway error"})
    with pytest.raises(HeleketTemporaryError, match=r"HTTP 400: Gateway error$"):
        await client.create_invoice(amount=Decimal("5"), currency="USD", order_id="stars-gw")
    assert len(served.emulator.calls) == 1


async def test_a_closed_port_is_a_temporary_error() -> None:
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    async with HeleketClient(
        base_url=f"http://127.0.0.1:{port}", merchant_uuid=MERCHANT, api_key=KEY, retries=1, backoff=0.01
    ) as client:
        with pytest.raises(HeleketTemporaryError, match="ConnectError"):
            await client.services()


async def test_validation_errors_are_the_rejected_kind_and_name_the_fields(
    served: Served, client: HeleketClient
) -> None:
    with pytest.raises(HeleketRejectedError) as caught:
        await client.create_invoice(amount=Decimal("-1"), currency="USD", order_id="has space.and-dot", lifetime=60)
    error = caught.value
    assert not error.temporary and error.status_code == 422
    assert error.errors == {
        "amount": ["validation.gt.numeric"],
        "order_id": ["validation.alpha_dash"],
        "lifetime": ["validation.between.numeric"],
    }
    assert "amount: validation.gt.numeric" in str(error) and "order_id: validation.alpha_dash" in str(error)
    assert [call.status for call in served.emulator.calls] == [422]  # a 4xx is never retried


async def test_business_errors_carry_helekets_message(client: HeleketClient) -> None:
    with pytest.raises(HeleketRejectedError, match=r"Minimum amount 0\.5 USDT"):
        await client.create_invoice(
            amount=Decimal("0.10"), currency="USD", order_id="tiny", to_currency="USDT", network="tron"
        )
    with pytest.raises(HeleketRejectedError, match="The currency was not found"):
        await client.create_invoice(amount=Decimal("1"), currency="XYZ", order_id="odd")
    with pytest.raises(HeleketRejectedError, match="HTTP 404: Payment not found"):
        await client.payment_info(uuid="0d4ad2d8-1f52-4b0c-9b4b-4f1b5e1f6d6f")


async def test_a_wrong_api_key_is_rejected_without_the_key_in_the_message(served: Served) -> None:
    secret = "WRONG_KEY_that_must_never_be_logged"
    async with served.client(api_key=secret) as client:
        assert secret not in repr(client) and KEY not in repr(client)
        with pytest.raises(HeleketRejectedError) as caught:
            await client.create_invoice(amount=Decimal("1"), currency="USD", order_id="stars-1")
    assert caught.value.status_code == 401 and "Invalid Sign." in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert served.emulator.invoices == {}


async def test_a_state_1_answer_with_http_200_is_an_error(served: Served, client: HeleketClient) -> None:
    served.emulator.fail_next("/v1/payment/services", 200, {"state": 1, "message": "You are forbidden"})
    with pytest.raises(HeleketRejectedError, match="You are forbidden"):
        await client.services()


async def test_services_and_rates_decode_money_as_decimals(client: HeleketClient) -> None:
    services = await client.services()
    usdt_ton = next(s for s in services if (s.currency, s.network.lower()) == ("USDT", "ton"))
    assert usdt_ton.is_available and usdt_ton.limit.min_amount == Decimal("0.5")
    assert isinstance(usdt_ton.commission.percent, Decimal) and usdt_ton.commission.percent == Decimal(2)
    rates = await client.exchange_rates("USD")
    usdt = next(rate for rate in rates if rate.to == "USDT")
    assert (usdt.from_, usdt.course) == ("USD", Decimal(1))
    assert all(isinstance(rate.course, Decimal) for rate in rates)


async def test_amounts_must_be_decimal_not_float(client: HeleketClient) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        await client.create_invoice(amount=1.5, currency="USD", order_id="float")  # type: ignore[arg-type]


async def test_raw_requests_are_checked_like_heleket(served: Served) -> None:
    body = b'{"amount":"1.50","currency":"USD","order_id":"raw-1"}'
    headers = {"merchant": MERCHANT, "sign": sign_body(body, KEY), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=served.base_url, trust_env=False) as http:
        created = await http.post("/v1/payment", content=body, headers=headers)
        # Signed over other bytes than sent (a PHP-escaped variant): Heleket's 401 shape.
        resigned = await http.post("/v1/payment", content=body.replace(b"1.50", b"1.5"), headers=headers)
        stranger = await http.post("/v1/payment", content=body, headers={**headers, "merchant": "someone-else"})
        # Parameterless calls accept md5(key), the docs' own curl example.
        services = await http.post(
            "/v1/payment/services", content=b"{}", headers={**headers, "sign": sign_body(b"", KEY)}
        )
        missing = await http.post("/v1/payment/info", content=b"{}", headers={**headers, "sign": sign_body(b"{}", KEY)})
        listed = await http.post("/v1/payment/list", content=b"", headers={**headers, "sign": sign_body(b"", KEY)})
    assert created.status_code == 200 and created.json()["state"] == 0
    assert created.json()["result"]["amount"] == "1.50" and created.json()["result"]["payment_amount"] is None
    assert (resigned.status_code, resigned.json()) == (401, {"state": 1, "message": "Invalid Sign."})
    assert stranger.status_code == 401
    assert services.status_code == 200 and services.json()["result"][0]["limit"]["min_amount"] == "0.50000000"
    assert missing.status_code == 422 and missing.json() == {
        "state": 1,
        "errors": {"uuid": ["validation.required_without"], "order_id": ["validation.required_without"]},
    }
    page = listed.json()["result"]
    assert [item["order_id"] for item in page["items"]] == ["raw-1"] and page["paginate"]["hasPages"] is False


async def test_the_circuit_counts_each_call_once_and_fails_fast_while_open(served: Served) -> None:
    breaker = CircuitBreaker("heleket", CircuitBreakerConfig(failure_threshold=2, timeout=60, success_threshold=1))
    async with HeleketClient(
        base_url=served.base_url, merchant_uuid=MERCHANT, api_key=KEY, retries=2, backoff=0.01, breaker=breaker
    ) as client:
        for _ in range(3):
            served.emulator.fail_next("/v1/payment/info", 503)
        with pytest.raises(HeleketTemporaryError, match="gave up after 3 attempts"):
            await client.payment_info(order_id="anything")
        served.emulator.fail_next("/v1/payment", 422, {"state": 1, "message": "The amount field is required."})
        with pytest.raises(HeleketRejectedError):  # Heleket answered: it is up, and the failures start over
            await client.create_invoice(amount=Decimal("5"), currency="USD", order_id="stars-rejected")
        for _ in range(3):
            served.emulator.fail_next("/v1/payment/info", 503)
        with pytest.raises(HeleketTemporaryError):
            await client.payment_info(order_id="anything")
        assert await breaker.state() == "closed"
        served.emulator.fail_next("/v1/payment", 400, {"state": 1, "message": "Gateway error"})
        with pytest.raises(HeleketTemporaryError):  # Heleket's own trouble in a 4xx: a failure
            await client.create_invoice(amount=Decimal("5"), currency="USD", order_id="stars-gw")
        assert await breaker.state() == "open"
        asked = len(served.emulator.calls)
        with pytest.raises(HeleketCircuitOpenError, match=r"Heleket /v1/payment/services: circuit open; retry in 60 s"):
            await client.services()
        assert len(served.emulator.calls) == asked
