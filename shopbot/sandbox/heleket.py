"""A Heleket API emulator: a real HTTP server our unchanged client talks to, with webhooks, driven by tests."""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import httpx
import msgspec
from anyio.abc import TaskStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopbot.payments.heleket_wire import CreateInvoice, Invoice, InvoicePage, Ok, Paginate, Rate, Service
from shopbot.payments.signing import sign_body
from shopbot.sandbox.heleket_invoices import (
    DEFAULT_SERVICES,
    FIAT,
    Q8,
    USD_PRICES,
    ApiFailure,
    InvoiceState,
    apply_payment,
    choose_coin,
    expire,
    find_service,
    identifier,
    made_up_invoice,
    new_invoice,
    refresh,
    set_status,
    validate_create,
    validate_test_webhook,
    webhook_payload,
)
from shopbot.sandbox.heleket_webhooks import WebhookDelivery, WebhookNotDelivered, WebhookSender
from shopbot.web.asgi import serve_asgi

__all__ = ["HeleketCall", "HeleketEmulator", "WebhookDelivery", "WebhookNotDelivered", "serve_heleket_emulator"]

logger = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
INVALID_SIGN = {"state": 1, "message": "Invalid Sign."}
SERVER_ERROR = {"message": "Server error, #1", "code": 500, "error": None}
EXPIRY_CHECK_SECONDS = 0.05
PER_PAGE = 15


class HeleketCall(msgspec.Struct, frozen=True, kw_only=True):
    """One API request as the emulator saw and answered it."""

    method: str
    path: str
    body: bytes
    status: int
    response: bytes
    time: float


class _Fault(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    after_processing: bool
    headers: dict[str, str] = {}


TOO_MANY_REQUESTS = {"state": 1, "message": "Too Many Attempts."}


class HeleketEmulator:
    """Heleket's payment API for one merchant. Serve `app`; drive payments with the test API."""

    def __init__(
        self,
        *,
        merchant_uuid: str,
        api_key: str,
        webhook_retry_seconds: float = 0.2,
        max_webhook_attempts: int = 5,
        services: Sequence[Service] = DEFAULT_SERVICES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.merchant_uuid = merchant_uuid
        self._api_key = api_key
        self.services = list(services)
        self.clock = clock  # wall-clock seconds; tests may pass their own to move time for expiry
        self.calls: list[HeleketCall] = []
        self._states: dict[str, InvoiceState] = {}
        self._by_order: dict[str, str] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[float]] = defaultdict(deque)
        self._latency: dict[str, float] = {}
        self._rate_limited: tuple[str | None] | None = None  # (Retry-After or None) while every call gets a 429
        self._expiries: list[tuple[int, str]] = []  # (expired_at, uuid), a heap: expiry looks only at what is due
        # The exchange-rate lists' own table (set_usd_price moves it); invoices convert with the module's.
        self._usd_prices: dict[str, Decimal] = dict(USD_PRICES)
        self._webhooks = WebhookSender(
            api_key=api_key, retry_seconds=webhook_retry_seconds, max_attempts=max_webhook_attempts
        )
        self.app = Starlette(
            routes=[
                Route("/v1/payment", self._endpoint(self._create), methods=["POST"]),
                Route("/v1/payment/info", self._endpoint(self._info), methods=["POST"]),
                Route("/v1/payment/services", self._endpoint(self._services), methods=["POST"]),
                Route("/v1/payment/list", self._endpoint(self._list), methods=["POST"]),
                Route("/v1/test-webhook/payment", self._endpoint(self._test_webhook), methods=["POST"]),
                # Rates are public in Heleket's docs: no merchant or sign needed (ref §3.7).
                Route("/v1/exchange-rate/{currency}/list", self._endpoint(self._rates, signed=False), methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def __repr__(self) -> str:
        return f"HeleketEmulator(merchant_uuid={self.merchant_uuid!r}, invoices={len(self._states)})"

    # --- the test-facing API -------------------------------------------------------------------------------

    @property
    def invoices(self) -> dict[str, Invoice]:
        """Every invoice as Heleket would report it now, by uuid."""
        self._expire_due()
        return {uuid: state.invoice for uuid, state in self._states.items()}

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST attempt so far (and attempts dropped by fail_webhooks), oldest first."""
        return self._webhooks.deliveries

    def invoice_by_order(self, order_id: str) -> Invoice:
        if order_id not in self._by_order:
            raise LookupError(f"no invoice with order_id {order_id!r}")
        return self._state(self._by_order[order_id]).invoice

    def status_history(self, uuid_or_order_id: str) -> list[str]:
        """The statuses the invoice went through, starting with `check`."""
        return list(self._state(uuid_or_order_id).history)

    def open_invoice(
        self,
        order_id: str,
        amount: Decimal,
        *,
        currency: str = "USD",
        url_callback: str | None = None,
        lifetime: int = 3600,
    ) -> Invoice:
        """An invoice as `POST /v1/payment` would make it, without the HTTP round trip (for bulk set-ups)."""
        create = CreateInvoice(
            amount=format(amount, "f"),
            currency=currency,
            order_id=order_id,
            url_callback=url_callback,
            lifetime=lifetime,
        )
        state = new_invoice(create, self.services, self.clock())
        self._add(state)
        return state.invoice

    def pay(
        self,
        uuid_or_order_id: str,
        *,
        amount: Decimal | None = None,
        currency: str | None = None,
        network: str | None = None,
        confirm_check: bool = False,
        final: bool = True,
    ) -> Invoice:
        """The payer sends `amount` of the coin (default: all that is still owed); `paid` when it covers it.

        For an invoice whose coin is not fixed yet, `currency`/`network` pick it (default: the first allowed
        option, else USDT on TRON). With confirm_check the non-final `confirm_check` webhook goes first.
        With final=False the invoice reaches its status but is not final yet (webhook and payment/info say
        `is_final: false`) until `finalize`.
        """
        state = self._payable(uuid_or_order_id, currency, network)
        assert state.invoice.payer_amount is not None
        amount = state.invoice.payer_amount - state.paid if amount is None else amount
        return self._receive(state, amount, confirm_check, final)

    def finalize(self, uuid_or_order_id: str) -> Invoice:
        """Make final a status held back by pay(final=False); its final webhook goes out."""
        state = self._state(uuid_or_order_id)
        if state.invoice.is_final:
            raise ValueError(f"invoice {state.invoice.order_id} is already final ({state.invoice.status})")
        set_status(state, state.invoice.status, self.clock(), final=True)
        self._notify(state)
        return state.invoice

    def refund(self, uuid_or_order_id: str) -> Invoice:
        """The merchant refunds a paid invoice: `refund_process`, then `refund_paid` (ref §3.3), with webhooks."""
        state = self._state(uuid_or_order_id)
        if state.invoice.status not in ("paid", "paid_over", "wrong_amount"):
            raise ValueError(f"invoice {state.invoice.order_id} is {state.invoice.status}: nothing to refund")
        for status in ("refund_process", "refund_paid"):
            set_status(state, status, self.clock())
            self._notify(state)
        return state.invoice

    def send_webhook(self, uuid_or_order_id: str, status: str = "paid") -> dict[str, Any]:
        """A signed webhook for an existing invoice saying `status`, which the invoice is not changed to: what
        Heleket's test webhooks do (ref §3.5), or a replay. Returns the payload sent (without `sign`)."""
        state = self._state(uuid_or_order_id)
        if state.url_callback is None:
            raise ValueError(f"invoice {state.invoice.order_id} has no url_callback")
        payload = webhook_payload(state.invoice, status=status)
        self._webhooks.send(state.url_callback, payload)
        return payload

    def underpay(
        self,
        uuid_or_order_id: str,
        *,
        amount: Decimal | None = None,
        currency: str | None = None,
        network: str | None = None,
    ) -> Invoice:
        """Pay less than owed (default: half): `wrong_amount_waiting`, or `wrong_amount` without top-ups."""
        state = self._payable(uuid_or_order_id, currency, network)
        assert state.invoice.payer_amount is not None
        owed = state.invoice.payer_amount - state.paid
        amount = (owed / 2).quantize(Q8) if amount is None else amount
        if amount >= owed:
            raise ValueError(f"an underpayment must be below the {owed} still owed")
        return self._receive(state, amount, False)

    def overpay(
        self,
        uuid_or_order_id: str,
        *,
        amount: Decimal | None = None,
        currency: str | None = None,
        network: str | None = None,
    ) -> Invoice:
        """Pay more than owed (default: 10% more): `paid_over`."""
        state = self._payable(uuid_or_order_id, currency, network)
        assert state.invoice.payer_amount is not None
        owed = state.invoice.payer_amount - state.paid
        amount = (owed * Decimal("1.1")).quantize(Q8) if amount is None else amount
        if amount <= owed:
            raise ValueError(f"an overpayment must be above the {owed} still owed")
        return self._receive(state, amount, False)

    def expire(self, uuid_or_order_id: str) -> Invoice:
        """End the invoice's lifetime now: `cancel`, or `wrong_amount` if part was paid."""
        state = self._state(uuid_or_order_id)
        if state.invoice.is_final:
            raise ValueError(f"invoice {state.invoice.order_id} is already final ({state.invoice.status})")
        self._expire(state)
        return state.invoice

    def fail_webhooks(self, count: int) -> None:
        """Drop the next `count` delivery attempts without sending them; they are retried as usual."""
        self._webhooks.fail_count = count

    def duplicate_webhooks(self, on: bool = True) -> None:
        """Deliver every acknowledged webhook a second time, as Heleket may."""
        self._webhooks.duplicate = on

    def unicode_escapes(self, on: bool = True) -> None:
        """Write webhook bodies with \\uXXXX escapes instead of raw UTF-8 (the signature does not change)."""
        self._webhooks.unicode_escapes = on

    def silence_webhooks(self, on: bool = True) -> None:
        """Send no webhooks at all while on (status changes still happen): for reconciliation tests."""
        self._webhooks.silenced = on

    def fail_next(
        self,
        path: str,
        status: int = 500,
        body: dict[str, Any] | bytes | None = None,
        *,
        after_processing: bool = False,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next request to path with this status and body (queued). after_processing: do the work
        first and lose the answer, as when Heleket created the invoice but the response never arrived.
        retry_after: a Retry-After header to send with it (for 429s)."""
        if body is None:
            body = (
                SERVER_ERROR
                if status >= 500
                else TOO_MANY_REQUESTS
                if status == 429
                else {"state": 1, "message": "Server error"}
            )
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._faults[path].append(
            _Fault(status, body if isinstance(body, bytes) else _encode(body), after_processing, headers)
        )

    def delay_next(self, path: str, seconds: float) -> None:
        """Answer the next request to path only after `seconds` (queued): a slow Heleket."""
        self._delays[path].append(seconds)

    def set_latency(self, path: str, seconds: float) -> None:
        """Answer every request to path after `seconds` until set back to 0 (e.g. a slow payment/info)."""
        self._latency[path] = seconds

    def set_usd_price(self, currency: str, usd: Decimal | None) -> None:
        """One unit of `currency` is worth `usd` in the exchange-rate lists from now on; None takes the currency
        out of them (a list asked for it answers 404, other lists lack it). Invoices keep the default table."""
        code = currency.strip().upper()
        if not code:
            raise ValueError("a currency code is needed")
        if usd is None:
            self._usd_prices.pop(code, None)
            return
        try:
            usd = Decimal(usd)
        except (ArithmeticError, TypeError, ValueError):
            raise ValueError(f"a USD price must be a number, not {usd!r}") from None
        if not usd.is_finite() or usd <= 0:
            raise ValueError(f"a USD price must be positive, not {usd}")
        self._usd_prices[code] = usd

    def rate_limit(self, on: bool = True, *, retry_after: str | None = None) -> None:
        """While on, answer every API call 429 "Too Many Attempts.", with Retry-After if given; nothing is done."""
        self._rate_limited = (retry_after,) if on else None

    async def wait_for_webhook(
        self,
        status: str | None = None,
        *,
        order_id: str | None = None,
        uuid: str | None = None,
        ok: bool | None = True,
        timeout: float = 5.0,
    ) -> WebhookDelivery:
        """The oldest matching delivery not returned before; ok=True (default) only acknowledged ones."""

        def matches(delivery: WebhookDelivery) -> bool:
            payload = delivery.payload
            return (
                (status is None or payload.get("status") == status)
                and (order_id is None or payload.get("order_id") == order_id)
                and (uuid is None or payload.get("uuid") == uuid)
                and (ok is None or delivery.ok == ok)
            )

        wanted = ", ".join(
            f"{k}={v!r}"
            for k, v in (("status", status), ("order_id", order_id), ("uuid", uuid), ("ok", ok))
            if v is not None
        )
        return await self._webhooks.wait_for(matches, wanted or "at all", timeout)

    # --- HTTP ----------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # trust_env=False: a proxy from the environment must not swallow deliveries to 127.0.0.1.
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client, anyio.create_task_group() as group:
            await group.start(self._webhooks.run, client, name="heleket emulator webhook delivery")
            group.start_soon(self._expire_periodically, name="heleket emulator invoice expiry")
            yield
            group.cancel_scope.cancel()

    def _endpoint(
        self, handler: Callable[[Request, dict[str, Any]], Awaitable[Any]], *, signed: bool = True
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            path, raw = request.url.path, await request.body()
            status, answer, headers = await self._answer(request, handler, path, raw, signed)
            self.calls.append(
                HeleketCall(
                    method=request.method, path=path, body=raw, status=status, response=answer, time=time.monotonic()
                )
            )
            return Response(answer, status_code=status, media_type="application/json", headers=headers)

        return endpoint

    async def _answer(
        self,
        request: Request,
        handler: Callable[[Request, dict[str, Any]], Awaitable[Any]],
        path: str,
        raw: bytes,
        signed: bool,
    ) -> tuple[int, bytes, dict[str, str]]:
        if self._delays[path]:
            await anyio.sleep(self._delays[path].popleft())
        if self._latency.get(path):
            await anyio.sleep(self._latency[path])
        if self._rate_limited is not None:
            retry_after = self._rate_limited[0]
            return 429, _encode(TOO_MANY_REQUESTS), {"Retry-After": retry_after} if retry_after else {}
        fault = self._faults[path].popleft() if self._faults[path] else None
        if fault is not None and not fault.after_processing:
            return fault.status, fault.body, fault.headers
        if signed and not self._authentic(request, raw):
            return 401, _encode(INVALID_SIGN), {}
        try:
            decoded = _decode(raw) if raw.strip() else {}
        except msgspec.DecodeError:
            decoded = {}
        # Laravel reads a body that is not a JSON object as no input at all.
        params = decoded if isinstance(decoded, dict) else {}
        self._expire_due()
        try:
            status, answer = 200, _encode(Ok(state=0, result=await handler(request, params)))
        except ApiFailure as failure:
            status, answer = failure.status, _encode(failure.body)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        return status, answer, {}

    def _authentic(self, request: Request, raw: bytes) -> bool:
        if request.headers.get("merchant") != self.merchant_uuid:
            return False
        sign = request.headers.get("sign", "")
        # Heleket hashes the raw bytes it received (ref §1.2); parameterless calls may also sign '' (ref §9.1).
        accepted = {sign_body(raw, self._api_key)}
        if raw.strip() in (b"", b"{}", b"[]"):
            accepted.add(sign_body(b"", self._api_key))
        return sign in accepted

    async def _create(self, request: Request, params: dict[str, Any]) -> Invoice:
        create = validate_create(params)
        now = self.clock()
        existing = self._by_order.get(create.order_id)
        if existing is not None:
            # Same order_id: the stored invoice unchanged, whatever else differs (ref §2.1, §7 point 11).
            state = self._states[existing]
            if create.is_refresh and state.invoice.status == "cancel":
                refresh(state, now)
                self._watch_expiry(state)
            return state.invoice
        state = new_invoice(create, self.services, now)
        self._add(state)
        return state.invoice

    def _add(self, state: InvoiceState) -> None:
        if state.invoice.order_id in self._by_order:
            raise ValueError(f"order_id {state.invoice.order_id!r} is taken")
        self._states[state.invoice.uuid] = state
        self._by_order[state.invoice.order_id] = state.invoice.uuid
        self._watch_expiry(state)

    def _watch_expiry(self, state: InvoiceState) -> None:
        if state.invoice.expired_at is not None:
            heapq.heappush(self._expiries, (state.invoice.expired_at, state.invoice.uuid))

    async def _info(self, request: Request, params: dict[str, Any]) -> Invoice:
        uuid, order_id = identifier(params)
        # Both given: order_id wins for info (ref §3.1).
        found = self._by_order.get(order_id) if order_id is not None else self._by_order_or_uuid(uuid)
        if found is None:
            raise ApiFailure.message(404, "Payment not found")
        return self._states[found].invoice

    async def _services(self, request: Request, params: dict[str, Any]) -> list[Service]:
        return self.services

    async def _list(self, request: Request, params: dict[str, Any]) -> InvoicePage:
        newest_first = list(reversed(self._states.values()))
        try:
            offset = max(int(request.query_params.get("cursor", "0")), 0)
        except ValueError:
            offset = 0
        page = newest_first[offset : offset + PER_PAGE]
        has_more = offset + PER_PAGE < len(newest_first)
        return InvoicePage(
            items=[state.invoice for state in page],
            paginate=Paginate(
                count=len(page),
                hasPages=offset > 0 or has_more,
                nextCursor=str(offset + PER_PAGE) if has_more else None,
                previousCursor=str(max(offset - PER_PAGE, 0)) if offset > 0 else None,
                perPage=PER_PAGE,
            ),
        )

    async def _test_webhook(self, request: Request, params: dict[str, Any]) -> list[Any]:
        test = validate_test_webhook(params)
        # An existing invoice is used when named (uuid wins, ref §3.5); nothing is stored either way.
        known = test.uuid if test.uuid in self._states else self._by_order.get(str(test.order_id))
        invoice = self._states[known].invoice if known is not None else made_up_invoice(test)
        self._webhooks.send(test.url_callback, webhook_payload(invoice, status=test.status))
        return []

    async def _rates(self, request: Request, params: dict[str, Any]) -> list[Rate]:
        source = request.path_params["currency"].upper()
        prices = self._usd_prices
        if source not in prices:
            raise ApiFailure.message(404, "The currency was not found")
        return [
            Rate(from_=source, to=target, course=(prices[source] / usd).quantize(Q8))
            for target, usd in prices.items()
            if target != source
        ]

    # --- invoices ------------------------------------------------------------------------------------------

    def _by_order_or_uuid(self, key: Any) -> str | None:
        if not isinstance(key, str):
            return None
        return key if key in self._states else self._by_order.get(key)

    def _state(self, uuid_or_order_id: str) -> InvoiceState:
        found = self._by_order_or_uuid(uuid_or_order_id)
        if found is None:
            raise LookupError(f"no invoice with uuid or order_id {uuid_or_order_id!r}")
        self._expire_due()
        return self._states[found]

    def _payable(self, uuid_or_order_id: str, currency: str | None, network: str | None) -> InvoiceState:
        state = self._state(uuid_or_order_id)
        invoice = state.invoice
        if invoice.is_final:
            raise ValueError(f"invoice {invoice.order_id} is final ({invoice.status}) and takes no payment")
        if invoice.payer_currency is None:
            # The payer's pick on the hosted page: the coin asked for, else the first allowed option, else the
            # invoice's own coin, else USDT; on the network asked for, else the option's, else the coin's first.
            option = state.currencies[0] if state.currencies else None
            coin = (
                currency
                or (option.currency if option else None)
                or (invoice.currency if invoice.currency not in FIAT else "USDT")
            ).upper()
            chain = (
                network
                or (option.network if option and option.currency.upper() == coin else None)
                or next((service.network for service in self.services if service.currency == coin), None)
            )
            if chain is None:
                raise ValueError(f"no service takes {coin}")
            chain = chain.lower()
            if state.currencies and not any(
                o.currency.upper() == coin and (o.network or chain).lower() == chain for o in state.currencies
            ):
                raise ValueError(f"{coin} on {chain} is not among the invoice's currencies")
            choose_coin(state, self.services, coin, chain)
        elif currency is not None and currency.upper() != invoice.payer_currency:
            raise ValueError(f"the invoice takes {invoice.payer_currency}, not {currency}")
        return state

    def _receive(self, state: InvoiceState, amount: Decimal, confirm_check: bool, final: bool = True) -> Invoice:
        invoice = state.invoice
        assert invoice.payer_currency is not None and invoice.network is not None
        service = find_service(self.services, invoice.payer_currency, invoice.network)
        apply_payment(state, service, amount, self.clock(), final=final)
        if confirm_check:
            self._notify(state, status="confirm_check")
        self._notify(state)
        return state.invoice

    def _expire(self, state: InvoiceState) -> None:
        expire(state, self.clock())
        self._notify(state)

    def _expire_due(self) -> None:
        # Only the invoices whose time has come are looked at, so tens of thousands of open ones cost nothing.
        now = self.clock()
        while self._expiries and self._expiries[0][0] <= now:
            expired_at, uuid = heapq.heappop(self._expiries)
            state = self._states[uuid]
            invoice = state.invoice
            if not invoice.is_final and invoice.expired_at == expired_at:
                self._expire(state)

    async def _expire_periodically(self) -> None:
        while True:
            self._expire_due()
            await anyio.sleep(EXPIRY_CHECK_SECONDS)

    def _notify(self, state: InvoiceState, *, status: str | None = None) -> None:
        if state.url_callback is not None:
            self._webhooks.send(state.url_callback, webhook_payload(state.invoice, status=status))


async def serve_heleket_emulator(
    emulator: HeleketEmulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator over HTTP until the enclosing scope is cancelled; started() gets the port."""
    await serve_asgi(emulator.app, host=host, port=port, graceful_seconds=1.0, task_status=task_status)
