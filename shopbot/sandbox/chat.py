"""The sandbox's web chat: talk to the bot as a test user, pay invoices, watch Fragment, flip faults.

The page (static/chat.html) polls a small JSON API over the emulators; balances are read through the
running shop's ledger. Every other path is forwarded to the shop's own web server, so the one address
the sandbox prints also answers the shop's /health (its /metrics is on its own listener, which the shop logs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import asyncpg
import httpx
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from shopbot.app.serve import RunningShop
from shopbot.money import format_money
from shopbot.payments.heleket_wire import Invoice
from shopbot.payments.referrals import PAYLOAD_PREFIX, referral_code
from shopbot.sandbox.chat_faults import FAULTS, FaultSwitches, fail
from shopbot.sandbox.chat_views import message_view, order_view, payment_view, user_view
from shopbot.sandbox.fragment import ENDPOINTS, UNKNOWN_USER_ANSWERS, FragmentEmulator
from shopbot.sandbox.fragment_wire import STATUS_OF
from shopbot.sandbox.heleket import HeleketEmulator
from shopbot.sandbox.telegram import TelegramEmulator
from shopbot.sandbox.telegram_wire import User

STATIC = Path(__file__).parent / "static"
FIRST_USER_ID = 100_000_001
UNKNOWN_USERNAME = "nobody_here"  # the one username nobody has on the sandbox's Fragment
# Promo codes the sandbox creates at start (run.py): a credit and a discount.
SAMPLE_PROMO_CODES = {"SANDBOX": "adds 1.00 to the balance", "SAVE10": "takes 10 % off the next purchase, at most 1.00"}
HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "upgrade"}
)

T = TypeVar("T")
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Username = Annotated[str, msgspec.Meta(pattern=r"^@?[A-Za-z0-9_]{4,32}$")]


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A test user the page asks for (or renames)."""

    first_name: Name
    username: Username | None = None
    language_code: Literal["en", "ru"] = "en"


class SentText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the test user types into the chat."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Press(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The test user presses an inline button under one of the bot's messages."""

    message_id: int
    callback_data: str


NEW_USER = msgspec.json.Decoder(NewUser)
SENT_TEXT = msgspec.json.Decoder(SentText)
PRESS = msgspec.json.Decoder(Press)


def decode(raw: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """The body as the decoder's type, or a 400 that says what is wrong with it."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as error:
        raise fail(400, f"invalid request: {error}") from None
    except msgspec.DecodeError as error:
        raise fail(400, f"the body is not JSON: {error}") from None


class ChatPage:
    """The page and its API over one sandbox's emulators and shop. Serve `app`."""

    def __init__(
        self,
        *,
        telegram: TelegramEmulator,
        heleket: HeleketEmulator,
        fragment: FragmentEmulator,
        shop: RunningShop,
        shop_url: str,
    ) -> None:
        self.telegram, self.heleket, self.fragment, self.shop = telegram, heleket, fragment, shop
        self.shop_url = shop_url
        self.faults = FaultSwitches(fragment=fragment, heleket=heleket)
        self._http: httpx.AsyncClient | None = None
        api = [
            Route("/setup", self.get_setup, methods=["GET"]),
            Route("/users", self.post_user, methods=["POST"]),
            Route("/users/{user_id:int}", self.put_user, methods=["PUT"]),
            Route("/users/{user_id:int}/invitee", self.post_invitee, methods=["POST"]),
            Route("/chats/{user_id:int}/messages", self.get_messages, methods=["GET"]),
            Route("/chats/{user_id:int}/messages", self.post_message, methods=["POST"]),
            Route("/chats/{user_id:int}/press", self.post_press, methods=["POST"]),
            Route("/invoices/{uuid}", self.get_invoice, methods=["GET"]),
            Route("/invoices/{uuid}/{action}", self.post_invoice, methods=["POST"]),
            Route("/panel", self.get_panel, methods=["GET"]),
            Route("/faults", self.post_fault, methods=["POST"]),
        ]
        self.app = Starlette(
            routes=[
                Route("/", self.get_page, methods=["GET"]),
                Route("/pay/{uuid}", self.get_page, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC)),
                Mount("/api", routes=api),
                Route("/{path:path}", self.forward, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
            ],
            exception_handlers={HTTPException: self.on_http_error},
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=self.shop_url, timeout=30.0) as http:
            self._http = http
            yield
        self._http = None

    async def get_page(self, request: Request) -> Response:
        return FileResponse(STATIC / "chat.html", media_type="text/html")

    async def on_http_error(self, request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    # --- users and chats ---------------------------------------------------------------------------------

    async def get_setup(self, request: Request) -> Response:
        return JSONResponse(
            {
                "bot": {"name": self.telegram.bot.first_name, "username": self.telegram.bot.username},
                "users": [user_view(user) for _, user in sorted(self.telegram.users.items())],
                "fragment_endpoints": list(ENDPOINTS),
                "fragment_codes": sorted(STATUS_OF),
                "fragment_unknown_user_answers": list(UNKNOWN_USER_ANSWERS),
                "unknown_username": UNKNOWN_USERNAME,
                "promo_codes": SAMPLE_PROMO_CODES,
            }
        )

    async def post_user(self, request: Request) -> Response:
        asked = decode(await request.body(), NEW_USER)
        user = self.add(max([FIRST_USER_ID - 1, *self.telegram.users]) + 1, asked)
        return JSONResponse(user_view(user), status_code=201)

    async def post_invitee(self, request: Request) -> Response:
        """A new test user who opens the bot through this user's referral link (`/start <payload>`)."""
        inviter = self.known_user(request)
        asked = decode(await request.body(), NEW_USER)
        try:
            code = await referral_code(self.shop.pool, inviter)
        except LookupError:
            raise fail(409, f"test user {inviter} has not talked to the bot yet: send /start first") from None
        user = self.add(max([FIRST_USER_ID - 1, *self.telegram.users]) + 1, asked)
        self.telegram.send_text(user.id, f"/start {PAYLOAD_PREFIX}{code}")
        return JSONResponse(user_view(user), status_code=201)

    async def put_user(self, request: Request) -> Response:
        user = self.add(self.known_user(request), decode(await request.body(), NEW_USER))
        return JSONResponse(user_view(user))

    async def get_messages(self, request: Request) -> Response:
        user_id = self.known_user(request)
        messages = self.telegram.chat_messages(user_id, include_user=True)
        return JSONResponse({"messages": [message_view(self.telegram, message) for message in messages]})

    async def post_message(self, request: Request) -> Response:
        user_id = self.known_user(request)
        self.telegram.send_text(user_id, decode(await request.body(), SENT_TEXT).text)
        return JSONResponse({"sent": True}, status_code=201)

    async def post_press(self, request: Request) -> Response:
        user_id = self.known_user(request)
        press = decode(await request.body(), PRESS)
        try:
            self.telegram.press_button(user_id, press.message_id, press.callback_data)
        except LookupError as error:
            raise fail(409, f"that button is no longer there: {error}") from None
        return JSONResponse({"pressed": True})

    def add(self, user_id: int, asked: NewUser) -> User:
        """The test user asked for, under this id (a new one, or renamed)."""
        username = asked.username.removeprefix("@") if asked.username else None
        return self.telegram.add_user(
            user_id, first_name=asked.first_name, username=username, language_code=asked.language_code
        )

    def known_user(self, request: Request) -> int:
        user_id: int = request.path_params["user_id"]
        if user_id not in self.telegram.users:
            raise fail(404, f"no test user {user_id}: create one first")
        return user_id

    # --- Heleket's payment page --------------------------------------------------------------------------

    async def get_invoice(self, request: Request) -> Response:
        uuid = request.path_params["uuid"]
        invoice = self.heleket.invoices.get(uuid)
        if invoice is None:
            raise fail(404, f"no Heleket invoice {uuid}")
        return JSONResponse(msgspec.to_builtins(invoice))

    async def post_invoice(self, request: Request) -> Response:
        uuid, action = request.path_params["uuid"], request.path_params["action"]
        actions: dict[str, Callable[[str], Invoice]] = {
            "pay": self.heleket.pay,
            "underpay": self.heleket.underpay,
            "overpay": self.heleket.overpay,
            "expire": self.heleket.expire,
            "test-webhook": self.send_test_webhook,
        }
        if action not in actions:
            raise fail(404, f"no action {action!r}: pay, underpay, overpay, expire or test-webhook")
        if uuid not in self.heleket.invoices:
            raise fail(404, f"no Heleket invoice {uuid}")
        try:
            invoice = actions[action](uuid)
        except ValueError as error:
            raise fail(409, str(error)) from None
        return JSONResponse(msgspec.to_builtins(invoice))

    def send_test_webhook(self, uuid: str) -> Invoice:
        """Heleket's test webhook for this invoice: a correctly signed `paid` that Heleket's own records do not
        bear out. The shop asks Heleket before it credits, so nothing is credited."""
        self.heleket.send_webhook(uuid, "paid")
        self.faults.arm(f"Heleket test webhook 'paid' sent for invoice {uuid[:8]}…")
        return self.heleket.invoices[uuid]

    # --- the side panel and the fault switches -----------------------------------------------------------

    async def get_panel(self, request: Request) -> Response:
        raw = request.query_params.get("user_id")
        balance: dict[str, str] | None = None
        if raw is not None:
            if not raw.isdigit():
                raise fail(400, f"user_id must be a number, not {raw!r}")
            balance = await self.balance(int(raw))
        orders = sorted(self.fragment.orders.values(), key=lambda order: order.created_at, reverse=True)
        return JSONResponse(
            {
                "balance": balance,
                "orders": [order_view(order) for order in orders],
                "payments": [payment_view(payment) for payment in reversed(self.fragment.payments)],
                "switches": self.faults.state,
            }
        )

    async def balance(self, user_id: int) -> dict[str, str] | None:
        """The user's balance as the shop's ledger has it; None until the shop has met the user."""
        try:
            found = await self.shop.ledger.balance(user_id)
        except asyncpg.ForeignKeyViolationError:
            return None
        currency = self.shop.ledger.currency
        return {"available": format_money(found.available, currency), "held": format_money(found.held, currency)}

    async def post_fault(self, request: Request) -> Response:
        self.faults.flip(decode(await request.body(), FAULTS))
        return JSONResponse(self.faults.state)

    # --- everything else belongs to the shop -------------------------------------------------------------

    async def forward(self, request: Request) -> Response:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            answer = await self._http.request(
                request.method,
                request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError as error:
            raise fail(502, f"the shop's web server did not answer: {error!r}") from None
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        return Response(answer.content, status_code=answer.status_code, headers=kept)
