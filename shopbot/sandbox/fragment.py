"""A Fragment API v3 emulator (api.fragment-api.net): a real HTTP server the unmodified fragment-api-lib
talks to, with emulated TON wallets behind it and faults a test can inject (refs/fragment.md §1, §2.1).

Point `FragmentAPIv3(base_url="http://127.0.0.1:<port>")` at `serve_fragment_emulator`. Tests set the world up
(`add_user`, `add_unknown_user`, `fund`; `unknown_user_answer` picks how a username nobody has is answered:
`found: false` or a 404 error), plan faults per endpoint — named after the library's methods, see `Endpoint` —
(`fail_next`, `drop_next`, `delay_next`, `ambiguous_next`, `expire_orders`, `expire_auth_keys`) and read what
happened (`payments`, `orders`, `wallet`, `calls`, `in_flight`). Call the test API from the event loop, not from
the worker thread the synchronous library runs in.

`landing_delay` models the chain's pace: a submitted external that passes every check is accepted at once (its
orders read `processing`) and lands that many seconds later; only then do the money leave, the wallet's seqno
advance and the orders read `success`. The submit is answered when it lands (the service waits for the
transaction), and a landing happens on time whether or not its submitter is still waiting. 0 (the default)
applies a payment as it is submitted.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeGuard, TypeVar, get_args

import anyio
import msgspec
from anyio.abc import TaskStatus
from fragment_api_lib.v3.address import Address
from fragment_api_lib.v3.payment import FRAGMENT_ADDRESSES, OPERATOR_FEE_WALLETS, OPERATOR_MIDDLE_WALLETS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from shopbot.sandbox.fragment_auth import Session, Sessions
from shopbot.sandbox.fragment_chain import (
    LANDS_LATE,
    Chain,
    FragmentPayment,
    InFlight,
    Landing,
    Outcome,
    SignedPayment,
)
from shopbot.sandbox.fragment_orders import (
    MAX_STARS,
    MIN_STARS,
    PREMIUM_MONTHS,
    OrderBook,
    OrderState,
    Pricing,
    Recipient,
    build_legs,
    new_ref,
    normalize_username,
    validate_product,
)
from shopbot.sandbox.fragment_ton import InvalidExternal, read_external
from shopbot.sandbox.fragment_wire import (
    CREATED,
    NETWORK,
    PROCESSING,
    STATUS_OF,
    ApiFailure,
    CreateOrder,
    Order,
    SignIn,
    Submit,
    encode,
    error_body,
)
from shopbot.web.asgi import serve_asgi

__all__ = [
    "UNKNOWN_USER_ANSWERS",
    "Endpoint",
    "FragmentCall",
    "FragmentEmulator",
    "FragmentPayment",
    "Landing",
    "UnknownUserAnswer",
    "WalletView",
    "is_endpoint",
    "is_unknown_user_answer",
    "serve_fragment_emulator",
]

# The library's method names, one per endpoint (auth() makes two calls: the challenge, then auth).
Endpoint = Literal[
    "auth_challenge",
    "auth",
    "revoke",
    "config",
    "wallet_info",
    "user_info",
    "create_order",
    "get_order",
    "list_orders",
    "submit",
]
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)
# The two shapes in which the service may say a username is nobody's (refs/fragment.md §2.1): a found:false body,
# or an error answer.
UnknownUserAnswer = Literal["found_false", "USER_NOT_FOUND", "RECIPIENT_NOT_FOUND"]
UNKNOWN_USER_ANSWERS: tuple[str, ...] = get_args(UnknownUserAnswer)
# These two change state only for a payment that passed every check, so they wait for one instead of
# answering the next submit blindly.
OUTCOME_CODES = ("TRANSFER_FAILED", "TRANSFER_AMBIGUOUS")
DEFAULT_PREMIUM_TON: Mapping[int, Decimal] = {3: Decimal("4.0"), 6: Decimal("5.33"), 12: Decimal("9.66")}
MAX_LIST_LIMIT = 100

# An endpoint's work: the request, its body, the caller's session (None before auth) and the time -> the JSON answer
# (or, for a submit, the payment in flight whose landing gives the answer).
Handler = Callable[[Request, bytes, Session | None, float], dict[str, Any] | InFlight]
T = TypeVar("T")


class FragmentCall(msgspec.Struct, frozen=True, kw_only=True):
    """One request as the emulator saw and answered it (no bodies: they hold cookies and keys)."""

    endpoint: str
    method: str
    path: str
    status: int | None  # None: the connection was dropped before the answer
    error_code: str | None
    injected: bool
    time: float


class WalletView(msgspec.Struct, frozen=True, kw_only=True):
    address: str  # friendly, non-bounceable
    raw_address: str
    state: str  # "uninit" until the first payment deploys it, then "active"
    seqno: int
    balance_nano: int


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: drop the connection
    code: str | None
    message: str | None
    extra: dict[str, Any]
    after_processing: bool


@dataclass(frozen=True)
class _Delay:
    seconds: float
    when: Callable[[], bool] | None  # applies to the first request arriving while this holds (None: the next)


@dataclass(frozen=True)
class _Pending:
    """A submit whose payment is in flight: answered when it lands."""

    flight: InFlight


@dataclass
class _Answer:
    status: int
    body: bytes
    code: str | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})


class _DroppedAnswer(Response):
    """The status line and headers go out, then the connection closes before a byte of the body: to a
    client, a connection broken mid-answer (requests raises ChunkedEncodingError)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        # Returning without the body makes hypercorn close the connection: h11 is mid-message.


class FragmentEmulator:
    """api.fragment-api.net's v3 API and the TON wallets behind it. Serve `app`; drive it with the test API."""

    def __init__(
        self,
        *,
        ton_per_star: Decimal = Decimal("0.0044"),
        premium_ton: Mapping[int, Decimal] | None = None,
        fee_percent: Decimal = Decimal("2"),
        latency: float = 0.0,
        order_ttl: float = 300.0,
        auth_ttl: float = 86_400.0,
        landing_delay: float = 0.0,
        fragment_wallet: str = FRAGMENT_ADDRESSES[1],
        fee_wallet: str = OPERATOR_FEE_WALLETS[0],
        middle_wallet: str = OPERATOR_MIDDLE_WALLETS[0],
        any_user: bool = False,
    ) -> None:
        self.pricing = Pricing(ton_per_star, dict(premium_ton or DEFAULT_PREMIUM_TON), fee_percent)
        self.latency = latency  # seconds added to every request before it is handled
        self.order_ttl = order_ttl  # an order's valid_until is this far after its creation
        self.no_kyc_available = True  # False: no-KYC orders are refused with NO_KYC_UNAVAILABLE
        self.any_user = any_user  # True: every well-formed username is found (the sandbox's choice)
        # How user_info answers a username nobody has: 200 with `found: false`, or that error code (404).
        self.unknown_user_answer: UnknownUserAnswer = "found_false"
        self._unknown: set[str] = set()  # nobody's, even with any_user
        self.fragment_wallet = Address.parse(fragment_wallet)
        self.fee_wallet = Address.parse(fee_wallet)
        self.middle_wallet = Address.parse(middle_wallet)
        self.calls: list[FragmentCall] = []
        self._sessions = Sessions(ttl=auth_ttl)
        self._book = OrderBook()
        self._chain = Chain(self._book.orders)
        self.landing_delay = landing_delay  # seconds from accepting a payment to its landing (0: at once)
        self._users: dict[str, Recipient] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[_Delay]] = defaultdict(deque)
        # Requests answering late on a planned delay right now, by endpoint (a trap can see one is held).
        self.waiting: defaultdict[str, int] = defaultdict(int)
        self._misanswers: deque[str] = deque()  # order ids the next create_order calls answer with
        self.app = Starlette(
            routes=[
                self._route("/v3/auth/challenge", "GET", "auth_challenge", self._challenge, authed=False),
                self._route("/v3/auth", "POST", "auth", self._sign_in, authed=False),
                self._route("/v3/auth", "DELETE", "revoke", self._revoke),
                self._route("/v3/config", "GET", "config", self._config, authed=False),
                self._route("/v3/wallet", "GET", "wallet_info", self._wallet_info),
                self._route("/v3/user_info", "GET", "user_info", self._user_info),
                self._route("/v3/orders", "POST", "create_order", self._create_order),
                self._route("/v3/orders", "GET", "list_orders", self._list_orders),
                self._route("/v3/orders/submit", "POST", "submit", self._submit),
                self._route("/v3/orders/{order_id}", "GET", "get_order", self._get_order),
            ]
        )

    def __repr__(self) -> str:
        return f"FragmentEmulator(wallets={len(self._chain.wallets)}, orders={len(self._book.orders)})"

    @property
    def landing_delay(self) -> float:
        """Seconds between accepting a submitted payment and its landing (0: it lands as it is submitted)."""
        return self._chain.landing_delay

    @landing_delay.setter
    def landing_delay(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"a landing delay is zero or more seconds, not {seconds}")
        self._chain.landing_delay = float(seconds)

    @property
    def in_flight(self) -> list[Landing]:
        """Payments accepted that have not landed yet (at most one per wallet), oldest first."""
        self._tick(time.time())
        return self._chain.landings()

    @property
    def payments(self) -> list[FragmentPayment]:
        """Every payment applied so far, oldest first (refunded ones included, marked)."""
        self._tick(time.time())
        return list(self._chain.payments)

    # --- the test-facing API -------------------------------------------------------------------------------

    def add_user(self, username: str, name: str, *, photo: str | None = None, premium: bool = False) -> Recipient:
        """A Telegram account Fragment finds; premium=True makes Premium orders for it PREMIUM_ACTIVE."""
        user = Recipient(
            username=normalize_username(username),
            name=name,
            photo=photo,
            recipient_id=secrets.token_urlsafe(10),
            premium=premium,
        )
        self._users[user.username] = user
        return user

    def add_unknown_user(self, username: str) -> None:
        """A username nobody has, even with any_user; see unknown_user_answer for how user_info says so."""
        name = normalize_username(username)
        self._users.pop(name, None)
        self._unknown.add(name)

    def fund(self, address: str, nanoton: int) -> int:
        """Send nanotons to a wallet (raw or friendly address); returns its new balance."""
        wallet = self._chain.wallet(Address.parse(address))
        wallet.balance += nanoton
        return wallet.balance

    def set_ton_cost(self, *, per_star: Decimal | None = None, premium: Mapping[int, Decimal] | None = None) -> None:
        """What Fragment asks in TON for orders created from now on: per star, and/or per Premium package by
        months (only the packages named change). Orders already created keep their price."""
        star = _positive_ton(per_star) if per_star is not None else self.pricing.ton_per_star
        packages = dict(self.pricing.premium_ton)
        for months, ton in (premium or {}).items():
            if months not in PREMIUM_MONTHS:
                raise ValueError(f"Premium comes in {', '.join(map(str, PREMIUM_MONTHS))} months, not {months}")
            packages[months] = _positive_ton(ton)
        # Checked in full before anything changes: a bad value leaves every price as it was.
        self.pricing.ton_per_star, self.pricing.premium_ton = star, packages

    def set_balance(self, address: str, nanoton: int) -> None:
        self._chain.wallet(Address.parse(address)).balance = nanoton

    def wallet(self, address: str) -> WalletView:
        """A wallet as the chain has it now (an unknown one is uninit and empty)."""
        self._tick(time.time())
        wallet = self._chain.wallet(Address.parse(address))
        return WalletView(
            address=wallet.address.to_friendly(bounceable=False),
            raw_address=wallet.address.to_raw(),
            state=wallet.state,
            seqno=wallet.seqno,
            balance_nano=wallet.balance,
        )

    @property
    def orders(self) -> dict[str, Order]:
        """Every order as the service would report it now, by id."""
        self._tick(time.time())
        return {order_id: state.order for order_id, state in self._book.orders.items()}

    def payments_for(self, order_id: str) -> list[FragmentPayment]:
        """Every applied payment that covered this order (a correct client makes at most one)."""
        return [payment for payment in self.payments if order_id in payment.order_ids]

    def fail_next(
        self,
        endpoint: Endpoint,
        code: str | None = None,
        *,
        status: int | None = None,
        message: str | None = None,
        resign: bool = False,
        after_processing: bool = False,
        times: int = 1,
        **extra: Any,
    ) -> None:
        """Answer the next `times` requests to endpoint with this error (code's usual status unless given).

        A 401 also ends the caller's auth key; a 5xx without a code is an HTML page; after_processing does the
        work first (the order is created, the payment applied). On "submit", TRANSFER_FAILED and
        TRANSFER_AMBIGUOUS apply to the next payment that passes every check instead (see ambiguous_next)."""
        _check_endpoint(endpoint)
        if code is None and status is None:
            raise ValueError("fail_next needs a code or a status")
        if endpoint == "submit" and code in OUTCOME_CODES:
            self._chain.outcomes.extend([Outcome(code)] * times)
            return
        if code is None and status == 401:
            code = "UNAUTHORIZED"
        if code == "TRANSFER_NOT_SENT":
            extra = {"resign": resign, **extra}
        fault = _Fault(status or STATUS_OF.get(code or "", 400), code, message, extra, after_processing)
        self._faults[endpoint].extend([fault] * times)

    def drop_next(self, endpoint: Endpoint, *, after_processing: bool = False, times: int = 1) -> None:
        """Close the next `times` connections to endpoint without a (complete) answer. after_processing: the
        request takes effect first, so the client sees a network error although e.g. the payment went out."""
        _check_endpoint(endpoint)
        self._faults[endpoint].extend([_Fault(None, None, None, {}, after_processing)] * times)

    def delay_next(
        self, endpoint: Endpoint, seconds: float, *, times: int = 1, when: Callable[[], bool] | None = None
    ) -> None:
        """Handle the next `times` requests to endpoint at once but answer `seconds` late: a slow service. With
        `when`, the delay waits for the first request that arrives while when() is true (a trap set for a
        moment, e.g. the first wallet read after some orders were made); `waiting` counts the requests held."""
        _check_endpoint(endpoint)
        self._delays[endpoint].extend([_Delay(seconds, when)] * times)

    def ambiguous_next(self, *, settle: Literal["success", "failed"] = "success", after: float | None = None) -> None:
        """The next valid payment goes out (money leaves, seqno moves) but submit answers TRANSFER_AMBIGUOUS
        and its orders stay `processing` until they settle: `after` seconds later, or when settle() is called
        (after=None). Settling "failed" refunds the money to the wallet."""
        self._chain.outcomes.append(Outcome("TRANSFER_AMBIGUOUS", settle, after))

    def lands_late_next(self, after: float | None = None) -> None:
        """The next valid payment leaves the wallet at once (money and seqno), but the service sees it land
        only `after` seconds later (or at settle()): until then its orders read `created`, as if unpaid, and
        submit answers TRANSFER_AMBIGUOUS. A slow chain behind a service that has not caught up; combine with
        drop_next("submit", after_processing=True) to lose that answer too."""
        self._chain.outcomes.append(Outcome(LANDS_LATE, "success", after))

    def answer_next_create_with(self, order_id: str, *, times: int = 1) -> None:
        """Answer the next `times` create_order calls with this existing order, whatever they ask: a service
        that mixes up idempotency keys."""
        if order_id not in self._book.orders:
            raise ValueError(f"no order {order_id}")
        self._misanswers.extend([order_id] * times)

    @property
    def received(self) -> list[SignedPayment]:
        """Every distinct signed payment the service was handed, accepted or not, oldest first."""
        return list(self._chain.received)

    def submitted_for(self, order_id: str) -> list[SignedPayment]:
        """Every distinct signed payment the service was handed for this order, accepted or not, oldest first."""
        return [signed for signed in self._chain.received if order_id in signed.order_ids]

    def settle(self, order_id: str, outcome: Literal["success", "failed"] | None = None) -> None:
        """End a `processing` order (and the others its payment covered) now, as planned or as `outcome`; also
        lands a payment planned with lands_late_next(after=None)."""
        state = self._book.orders[order_id]
        if state.status not in (PROCESSING, CREATED) or state.settlement is None:
            raise ValueError(f"order {order_id} is {state.status}, not processing")
        self._chain.settle(state, outcome or state.settlement.outcome, time.time())

    def expire_orders(self, *order_ids: str) -> None:
        """End the valid_until of these unpaid orders (all unpaid ones when none are named) now."""
        now = time.time()
        for order_id, state in self._book.orders.items():
            if state.status == CREATED and (not order_ids or order_id in order_ids):
                state.order = msgspec.structs.replace(state.order, valid_until=int(now) - 1)
        self._tick(now)

    def expire_auth_keys(self) -> None:
        """Every auth key stops working: the next authenticated call gets 401 until the client signs in again."""
        self._sessions.expire_all()

    # --- HTTP plumbing ---------------------------------------------------------------------------------------

    def _route(self, path: str, method: str, endpoint: str, handler: Handler, *, authed: bool = True) -> Route:
        async def serve(request: Request) -> Response:
            return await self._serve(request, endpoint, handler, authed)

        return Route(path, serve, methods=[method], name=endpoint)

    async def _serve(self, request: Request, endpoint: str, handler: Handler, authed: bool) -> Response:
        if self.latency > 0:
            await anyio.sleep(self.latency)
        if endpoint == "submit":
            self._note_submission(request, await request.body())
        fault = self._faults[endpoint].popleft() if self._faults[endpoint] else None
        delays = self._delays[endpoint]
        delay = delays.popleft() if delays and (delays[0].when is None or delays[0].when()) else None
        if fault is None:
            answer = await self._landed(self._handle(request, await request.body(), handler, authed))
        else:
            processed = (
                await self._landed(self._handle(request, await request.body(), handler, authed))
                if fault.after_processing
                else None
            )
            answer = self._injected(fault, request, processed)
        if delay is not None:
            self.waiting[endpoint] += 1
            try:
                await anyio.sleep(delay.seconds)
            finally:
                self.waiting[endpoint] -= 1
        dropped = fault is not None and fault.status is None
        self.calls.append(
            FragmentCall(
                endpoint=endpoint,
                method=request.method,
                path=request.url.path,
                status=None if dropped else answer.status,
                error_code=answer.code,
                injected=fault is not None,
                time=time.monotonic(),
            )
        )
        response_type = _DroppedAnswer if dropped else Response
        return response_type(answer.body, status_code=answer.status, headers=answer.headers)

    def _note_submission(self, request: Request, raw: bytes) -> None:
        """Every signed payment handed to the service counts for submitted_for(), even one answered with an
        injected fault: it left the shop, and could have been relayed."""
        now = time.time()
        try:
            session = self._sessions.session(request.headers.get("authorization"), now)
            asked = _decode(raw, Submit)
            external = read_external(asked.boc)
        except (ApiFailure, InvalidExternal):
            return
        self._chain.receive(session, external, list(asked.orders), now)

    def _handle(self, request: Request, raw: bytes, handler: Handler, authed: bool) -> _Answer | _Pending:
        # Handlers are synchronous: each request's checks and state changes happen without interleaving.
        now = time.time()
        self._tick(now)
        try:
            session = self._sessions.session(request.headers.get("authorization"), now) if authed else None
            result = handler(request, raw, session, now)
        except ApiFailure as failure:
            return _failed(failure)
        if isinstance(result, InFlight):
            return _Pending(result)
        return _Answer(200, encode(result))

    async def _landed(self, answer: _Answer | _Pending) -> _Answer:
        """The answer, once a payment in flight has landed (it lands on time even if nobody waits for it)."""
        if isinstance(answer, _Answer):
            return answer
        flight = answer.flight
        while flight.result is None:
            await anyio.sleep(max(flight.lands_at - time.time(), 0.0) + 0.001)
            self._tick(time.time())
        if isinstance(flight.result, ApiFailure):
            return _failed(flight.result)
        return _Answer(200, encode(flight.result))

    def _injected(self, fault: _Fault, request: Request, processed: _Answer | None) -> _Answer:
        if fault.status is None:
            # A drop sends the head of what the client would have got (a bare 502 if nothing was done) and
            # never the body; the body must not be empty, or the head alone would be a complete answer.
            return processed or _Answer(502, error_body(502, None, None, {}), headers={"content-type": "text/html"})
        if fault.status == 401:
            self._sessions.revoke(request.headers.get("authorization"))
        body = error_body(fault.status, fault.code, fault.message, fault.extra)
        content_type = "application/json" if body.startswith(b"{") else "text/html"
        return _Answer(fault.status, body, fault.code, {"content-type": content_type})

    # --- endpoints -------------------------------------------------------------------------------------------

    def _challenge(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        return {"success": True, "nonce": self._sessions.challenge(now)}

    def _sign_in(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        key, signed_in = self._sessions.sign_in(_decode(raw, SignIn), request.url.hostname, now)
        wallet = self._chain.wallet(signed_in.wallet)
        return {
            "success": True,
            "auth_key": key,
            "expires_at": int(signed_in.expires_at),
            "wallet": {
                "address": wallet.address.to_friendly(bounceable=False),
                "raw_address": wallet.address.to_raw(),
                "wallet_type": signed_in.wallet_type,
            },
        }

    def _revoke(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        self._sessions.revoke(request.headers.get("authorization"))
        return {"success": True}

    def _config(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        return {
            "success": True,
            "network": NETWORK,
            "fee_wallet": self.fee_wallet.to_friendly(bounceable=False),
            "middle_wallet": self.middle_wallet.to_friendly(bounceable=False),
            "fee_percent": str(self.pricing.fee_percent),
            "no_kyc_available": self.no_kyc_available,
            "payment_methods": ["ton"],
            "products": {"stars": {"min": MIN_STARS, "max": MAX_STARS}, "premium": {"months": PREMIUM_MONTHS}},
        }

    def _wallet_info(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        assert session is not None
        wallet = self._chain.wallet(session.wallet)
        return {
            "success": True,
            "address": wallet.address.to_friendly(bounceable=False),
            "raw_address": wallet.address.to_raw(),
            "wallet_type": session.wallet_type,
            "state": wallet.state,
            "seqno": wallet.seqno,
            "balance_nano": str(wallet.balance),
            "usdt_raw": "0",
        }

    def _user_info(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        username = normalize_username(request.query_params.get("username", ""))
        user = self._find_user(username)
        if user is None and self.unknown_user_answer != "found_false":
            raise ApiFailure(self.unknown_user_answer)
        if user is None:
            return {"success": True, "found": False, "username": username, "name": None, "photo": None}
        return {"success": True, "found": True, "username": user.username, "name": user.name, "photo": user.photo}

    def _create_order(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        assert session is not None
        asked = _decode(raw, CreateOrder)
        if self._misanswers:
            return _order_answer(self._book.owned(session.wallet, self._misanswers.popleft()))
        known = self._book.by_key(session.wallet, asked.idempotency_key)
        return _order_answer(known if known is not None else self._new_order(asked, session, now))

    def _new_order(self, asked: CreateOrder, session: Session, now: float) -> OrderState:
        validate_product(asked)
        if asked.kyc and not session.cookies:
            raise ApiFailure("FRAGMENT_COOKIES_REQUIRED")
        if not asked.kyc and not self.no_kyc_available:
            raise ApiFailure("NO_KYC_UNAVAILABLE")
        user = self._find_user(normalize_username(asked.username))
        if user is None:
            raise ApiFailure("USER_NOT_FOUND")
        if asked.product == "premium" and user.premium:
            raise ApiFailure("PREMIUM_ACTIVE")
        ref = new_ref()
        legs = build_legs(asked, ref, self.pricing, self.fragment_wallet, self.fee_wallet, self.middle_wallet)
        return self._book.add(asked, session.wallet, user, legs, ref, now, self.order_ttl)

    def _get_order(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        assert session is not None
        state = self._book.owned(session.wallet, request.path_params["order_id"])
        return {"success": True, "order": state.order, "payment": state.payment()}

    def _list_orders(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any]:
        assert session is not None
        try:
            limit = min(max(int(request.query_params.get("limit", "10")), 1), MAX_LIST_LIMIT)
            offset = max(int(request.query_params.get("offset", "0")), 0)
        except ValueError:
            raise ApiFailure("BAD_REQUEST", "limit and offset must be integers") from None
        mine = self._book.of_wallet(session.wallet)
        return {
            "success": True,
            "orders": [state.order for state in mine[offset : offset + limit]],
            "total": len(mine),
            "limit": limit,
            "offset": offset,
        }

    def _submit(self, request: Request, raw: bytes, session: Session | None, now: float) -> dict[str, Any] | InFlight:
        assert session is not None
        asked = _decode(raw, Submit)
        if not asked.orders or len(set(asked.orders)) != len(asked.orders):
            raise ApiFailure("BAD_REQUEST", "orders must list each order to pay once")
        states = [self._book.owned(session.wallet, order_id) for order_id in asked.orders]
        return self._chain.submit(session, states, asked.boc, now)

    # --- state -----------------------------------------------------------------------------------------------

    def _find_user(self, username: str) -> Recipient | None:
        if username not in self._users and self.any_user and username not in self._unknown:
            self.add_user(username, username.replace("_", " ").title())
        return self._users.get(username)

    def _tick(self, now: float) -> None:
        self._chain.land_due(now)
        self._book.expire_due(now)
        for state in self._book.settle_due(now):
            if state.status in (PROCESSING, CREATED) and state.settlement is not None:
                self._chain.settle(state, state.settlement.outcome, now)


def is_endpoint(name: str) -> TypeGuard[Endpoint]:
    """Whether name is an endpoint faults can be planned for (one of ENDPOINTS)."""
    return name in ENDPOINTS


def is_unknown_user_answer(name: str) -> TypeGuard[UnknownUserAnswer]:
    """Whether name is one of the ways the service can say nobody has a username (UNKNOWN_USER_ANSWERS)."""
    return name in UNKNOWN_USER_ANSWERS


def _failed(failure: ApiFailure) -> _Answer:
    return _Answer(failure.status, encode(failure.body), failure.code)


def _order_answer(state: OrderState) -> dict[str, Any]:
    """create_order's answer for an order the service has: the order, how to pay it, and its recipient."""
    return {
        "success": True,
        "order": state.order,
        "payment": state.payment(),
        "recipient_id": state.order.recipient_id,
    }


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")


def _decode(raw: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise ApiFailure("BAD_REQUEST", str(error)) from None


async def serve_fragment_emulator(
    emulator: FragmentEmulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator over HTTP until the enclosing scope is cancelled; started() gets the port."""
    await serve_asgi(emulator.app, host=host, port=port, graceful_seconds=1.0, task_status=task_status)


def _positive_ton(value: Decimal) -> Decimal:
    try:
        ton = Decimal(value)
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError(f"a TON cost must be a number, not {value!r}") from None
    if not ton.is_finite() or ton <= 0:
        raise ValueError(f"a TON cost must be positive, not {value}")
    return ton
