"""An async Heleket API client that signs exactly the bytes it sends and retries only what is safe to retry."""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TypeVar, overload

import anyio
import httpx
import msgspec

from shopbot.errors import ShopbotError
from shopbot.guard.circuit import OPEN, CircuitBreaker
from shopbot.payments.heleket_wire import (
    CreateInvoice,
    CurrencyOption,
    Envelope,
    Invoice,
    PaymentInfoQuery,
    Rate,
    Request,
    Service,
    WebhookTestRequest,
)
from shopbot.payments.signing import sign_body

logger = logging.getLogger(__name__)

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_envelope = msgspec.json.Decoder(Envelope)
_invoice = msgspec.json.Decoder(Invoice)
_services = msgspec.json.Decoder(list[Service])
_rates = msgspec.json.Decoder(list[Rate])
# Heleket answers these with a 4xx but names them as passing troubles of its own (ref §2.3).
_TEMPORARY_MESSAGES = ("gateway error", "the terminal was not found", "server error")
_MAX_DETAIL = 300
# After a 429 without a usable Retry-After, calls pause this long; a Retry-After is honoured up to the cap.
RATE_LIMIT_PAUSE = 30.0
MAX_RATE_LIMIT_PAUSE = 600.0

# httpcore imports sniffio on every request (several times) to learn which event loop it runs on, and takes
# asyncio when it is missing. anyio 4 no longer installs it, and a failed import is not remembered: each request
# searched sys.path for it again, 40 µs a time: 3-4 % of the settler's time (bench/README.md, webhooks).
# Marked absent, the import fails at once, with the same outcome.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


class HeleketError(ShopbotError):
    """A Heleket call failed; the message is one line with Heleket's own words and never the API key."""

    temporary = False

    def __init__(
        self, path: str, detail: str, *, status_code: int | None = None, errors: dict[str, list[str]] | None = None
    ) -> None:
        self.path = path
        self.status_code = status_code
        self.errors = errors or {}  # field name -> Laravel-style rules, for validation errors
        self.detail = detail
        where = f"Heleket {path}" + (f" HTTP {status_code}" if status_code is not None else "")
        super().__init__(f"{where}: {detail}")


class HeleketTemporaryError(HeleketError):
    """Heleket could not be reached or failed on its side (network, timeout, 5xx): try again later."""

    temporary = True


class HeleketCircuitOpenError(HeleketTemporaryError):
    """Heleket failed too often lately, so this call was not made at all (its circuit is open)."""

    def __init__(self, path: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(path, f"circuit open; retry in {max(1, math.ceil(retry_after))} s")


class HeleketRateLimitedError(HeleketTemporaryError):
    """Heleket asked us to slow down (HTTP 429): no call is made until `retry_after` seconds have passed.

    Heleket is up and answering, so this is never counted against its circuit; it is a pause, not an outage.
    """

    def __init__(self, path: str, retry_after: float, *, sent: bool) -> None:
        self.retry_after = retry_after
        self.sent = sent  # False: refused here, during the pause, without asking Heleket
        super().__init__(
            path, f"rate limited; retry in {max(1, math.ceil(retry_after))} s", status_code=429 if sent else None
        )


class HeleketRejectedError(HeleketError):
    """Heleket refused the request (bad sign, validation, business rule): retrying it unchanged will not help."""


class HeleketClient:
    """Heleket's payment API for one merchant; use as an async context manager or call aclose()."""

    def __init__(
        self,
        *,
        base_url: str,
        merchant_uuid: str,
        api_key: str,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        http: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.merchant_uuid = merchant_uuid
        self.timeout = timeout
        self.retries = retries  # extra attempts after the first one
        self.backoff = backoff  # seconds before the first retry, doubled for each next one
        self.__api_key = api_key  # name-mangled and never in repr or messages
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        # Counts one outcome per call (after the retries): Heleket's own trouble is a failure, any answer
        # it gave (a result or a rejection) a success. While open, calls fail fast without a request.
        # A 429 counts as neither: it pauses this client's calls instead (`paused_for`).
        self.breaker = breaker
        self._paused_until = 0.0  # time.monotonic() before which a 429 asked us not to call

    def __repr__(self) -> str:
        return f"HeleketClient(base_url={self.base_url!r}, merchant_uuid={self.merchant_uuid!r})"

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> HeleketClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    def paused_for(self) -> float:
        """Seconds left of the pause a 429 asked for (0 when calls may be made)."""
        return max(0.0, self._paused_until - time.monotonic())

    # --- API ------------------------------------------------------------------------------------------------

    async def create_invoice(
        self,
        *,
        amount: Decimal,
        currency: str,
        order_id: str,
        url_callback: str | None = None,
        lifetime: int | None = None,
        currencies: Sequence[CurrencyOption] | None = None,
        network: str | None = None,
        to_currency: str | None = None,
        url_return: str | None = None,
        url_success: str | None = None,
        additional_data: str | None = None,
        is_payment_multiple: bool | None = None,
        subtract: int | None = None,
        accuracy_payment_percent: Decimal | None = None,
        is_refresh: bool | None = None,
    ) -> Invoice:
        """Create an invoice, or get the existing one: Heleket keys invoices by order_id, so retries are safe."""
        request = CreateInvoice(
            amount=_money(amount),
            currency=currency,
            order_id=order_id,
            network=network,
            url_return=url_return,
            url_success=url_success,
            url_callback=url_callback,
            is_payment_multiple=is_payment_multiple,
            lifetime=lifetime,
            to_currency=to_currency,
            subtract=subtract,
            accuracy_payment_percent=None if accuracy_payment_percent is None else _money(accuracy_payment_percent),
            additional_data=additional_data,
            currencies=list(currencies) if currencies is not None else None,
            is_refresh=is_refresh,
        )
        return await self._call("POST", "/v1/payment", request, _invoice)

    async def payment_info(self, *, uuid: str | None = None, order_id: str | None = None) -> Invoice:
        """The invoice as Heleket sees it now (if both are given, Heleket looks up order_id)."""
        if uuid is None and order_id is None:
            raise ValueError("payment_info needs uuid or order_id")
        return await self._call("POST", "/v1/payment/info", PaymentInfoQuery(uuid=uuid, order_id=order_id), _invoice)

    async def services(self) -> list[Service]:
        """Every currency and network the merchant can take, with limits and commissions."""
        return await self._call("POST", "/v1/payment/services", None, _services)

    async def exchange_rates(self, currency: str) -> list[Rate]:
        """Rates from `currency` to the others Heleket quotes."""
        return await self._call("GET", f"/v1/exchange-rate/{currency}/list", None, _rates)

    async def test_webhook(
        self,
        *,
        url_callback: str,
        currency: str,
        network: str,
        status: str = "paid",
        uuid: str | None = None,
        order_id: str | None = None,
    ) -> None:
        """Ask Heleket to POST a signed test webhook to url_callback (nothing is stored on its side)."""
        request = WebhookTestRequest(
            url_callback=url_callback, currency=currency, network=network, status=status, uuid=uuid, order_id=order_id
        )
        await self._call("POST", "/v1/test-webhook/payment", request, None)

    # --- transport ------------------------------------------------------------------------------------------

    @overload
    async def _call(self, method: str, path: str, request: Request | None, decoder: msgspec.json.Decoder[T]) -> T: ...

    @overload
    async def _call(self, method: str, path: str, request: Request | None, decoder: None) -> None: ...

    async def _call(
        self, method: str, path: str, request: Request | None, decoder: msgspec.json.Decoder[T] | None
    ) -> T | None:
        """One call through the circuit breaker: its result decoded, or None when there is no decoder."""
        paused = self.paused_for()
        if paused > 0:
            raise HeleketRateLimitedError(path, paused, sent=False)
        breaker = self.breaker
        if breaker is None:
            return await self._send(method, path, request, decoder)
        circuit = await breaker.status()
        if circuit.state == OPEN:
            raise HeleketCircuitOpenError(path, circuit.retry_after)
        try:
            result = await self._send(method, path, request, decoder)
        except HeleketRateLimitedError:
            raise  # Heleket answered: not a failure of Heleket's, and not a success to count either
        except HeleketTemporaryError:
            await breaker.record_failure()
            raise
        except HeleketError:
            await breaker.record_success()
            raise
        await breaker.record_success()
        return result

    async def _send(
        self, method: str, path: str, request: Request | None, decoder: msgspec.json.Decoder[T] | None
    ) -> T | None:
        # Serialized once: the same bytes are signed and sent, and a retry re-sends them unchanged (ref §1.2).
        # Calls without parameters send no body and sign '' - valid whether Heleket hashes the raw body or
        # always expects md5(key) there (ref §1.2, point 3).
        body = _encode(request) if request is not None else b""
        headers = {
            "merchant": self.merchant_uuid,
            "sign": sign_body(body, self.__api_key),
            "Content-Type": "application/json",
        }
        url = self.base_url + path
        attempts = self.retries + 1
        last: HeleketTemporaryError | None = None
        for attempt in range(attempts):
            if last is not None:
                delay = self.backoff * 2 ** (attempt - 1)
                logger.warning(
                    "heleket %s failed (attempt %d of %d), retrying in %.2f s: %s", path, attempt, attempts, delay, last
                )
                await anyio.sleep(delay)
            response: httpx.Response | None = None
            # httpx's timeout bounds each phase (connect, each read); this bounds the whole attempt.
            with anyio.move_on_after(self.timeout):
                try:
                    response = await self._http.request(
                        method, url, content=body or None, headers=headers, timeout=self.timeout
                    )
                except httpx.TransportError as error:
                    last = HeleketTemporaryError(path, self._clean(f"{type(error).__name__} {error}"))
                    continue
            if response is None:
                last = HeleketTemporaryError(path, f"no answer within {self.timeout:g} s")
                continue
            try:
                raw_result = self._result(path, response)
            except _Retry as retry:
                last = retry.error
                continue
            if decoder is None:
                return None
            try:
                return decoder.decode(raw_result)
            except msgspec.ValidationError as error:
                raise HeleketError(path, f"unexpected result: {error}", status_code=response.status_code) from None
        assert last is not None
        raise HeleketTemporaryError(
            path, f"{last.detail} (gave up after {attempts} attempts)", status_code=last.status_code
        )

    def _result(self, path: str, response: httpx.Response) -> bytes:
        """The raw `result` of a successful answer; raises _Retry, or HeleketError when retrying cannot help."""
        status = response.status_code
        try:
            envelope = _envelope.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            envelope = None
        if envelope is not None and envelope.state == 0 and status < 300:
            return bytes(envelope.result)
        if status == 429:
            # Retrying at once would only be refused again: every call pauses for as long as Heleket asks.
            pause = _retry_after(response.headers.get("retry-after"))
            self._paused_until = max(self._paused_until, time.monotonic() + pause)
            logger.warning("heleket %s: rate limited (429); no calls for %.0f s", path, pause)
            raise HeleketRateLimitedError(path, pause, sent=True)
        detail, errors = self._detail(envelope, response)
        # 5xx are Heleket's trouble, and so is an unreadable 2xx: the same body may be sent again,
        # which for a create means the same order_id and so the same invoice (ref §2.3). Any other
        # state != 0 is an error whatever the HTTP code.
        if status >= 500 or (envelope is None and status < 300):
            raise _Retry(HeleketTemporaryError(path, detail, status_code=status))
        if detail.lower().startswith(_TEMPORARY_MESSAGES):  # temporary, yet a 4xx: not ours to loop on
            raise HeleketTemporaryError(path, detail, status_code=status)
        raise HeleketRejectedError(path, detail, status_code=status, errors=errors)

    def _detail(self, envelope: Envelope | None, response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
        errors: dict[str, list[str]] = {}
        if envelope is None:
            text = response.text.strip() or response.reason_phrase or "empty body"
            return self._clean(f"not JSON: {text}"), errors
        if isinstance(envelope.errors, dict):
            errors = {
                str(field): [str(rule) for rule in rules] if isinstance(rules, list) else [str(rules)]
                for field, rules in envelope.errors.items()
            }
        parts = [str(envelope.message)] if envelope.message else []
        parts += [f"{field}: {', '.join(rules)}" for field, rules in errors.items()]
        return self._clean("; ".join(parts) or f"state {envelope.state}"), errors

    def _clean(self, text: str) -> str:
        """One line, bounded, and without the key even if a server were to echo it."""
        line = " ".join(text.split()).replace(self.__api_key, "***")
        return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 3] + "..."


class _Retry(Exception):
    """A failed attempt worth repeating with the same bytes."""

    def __init__(self, error: HeleketTemporaryError) -> None:
        self.error = error


def _retry_after(header: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), else RATE_LIMIT_PAUSE."""
    if not header:
        return RATE_LIMIT_PAUSE
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return RATE_LIMIT_PAUSE
    if seconds != seconds:  # NaN
        return RATE_LIMIT_PAUSE
    return min(max(seconds, 1.0), MAX_RATE_LIMIT_PAUSE)


def _money(amount: Decimal) -> str:
    if not isinstance(amount, Decimal):  # a float would carry binary noise into a price
        raise TypeError(f"amounts are Decimal, not {type(amount).__name__}")
    return format(amount, "f")
