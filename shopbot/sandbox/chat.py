"""The sandbox's web chat: talk to the bot as a test user, pay invoices, watch Fragment, flip faults.

The page (static/chat.html) polls a small JSON API over the emulators; balances are read through the
running shop's ledger. Every other path is forwarded to the shop's own web server, so the one address
the sandbox prints also answers the shop's /health (its /metrics is on its own listener, which the shop logs).
"""

from __future__ import annotations

import base64
import html
import itertools
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

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
from shopbot.payments.referrals import PAYLOAD_PREFIX, referral_code
from shopbot.sandbox.fragment import ENDPOINTS, UNKNOWN_USER_ANSWERS, FragmentEmulator
from shopbot.sandbox.fragment_orders import PREMIUM_MONTHS
from shopbot.sandbox.fragment_wire import STATUS_OF
from shopbot.sandbox.heleket import HeleketEmulator
from shopbot.sandbox.heleket_invoices import USD_PRICES
from shopbot.sandbox.telegram import TelegramEmulator
from shopbot.sandbox.telegram_wire import InlineKeyboardButton, Message, MessageEntity

STATIC = Path(__file__).parent / "static"
FIRST_USER_ID = 100_000_001
UNKNOWN_USERNAME = "nobody_here"  # the one username nobody has on the sandbox's Fragment
# Promo codes the sandbox creates at start (run.py): a credit and a discount.
SAMPLE_PROMO_CODES = {"SANDBOX": "adds 1.00 to the balance", "SAVE10": "takes 10 % off the next purchase, at most 1.00"}
# Where the emulated Heleket says its hosted payment page is; the chat opens its own /pay page instead.
HELEKET_PAGE = re.compile(r"https://pay\.heleket\.com/pay/([0-9a-f-]{36})")
HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "upgrade"}
)
TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "expandable_blockquote": "blockquote",
}

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Username = Annotated[str, msgspec.Meta(pattern=r"^@?[A-Za-z0-9_]{4,32}$")]


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: Name
    username: Username | None = None
    language_code: Literal["en", "ru"] = "en"


class SentText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Press(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message_id: int
    callback_data: str


class Switch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """One flip of a fault switch; `kind` says which."""


class FragmentFails(Switch, tag="fragment_fail"):
    endpoint: str
    code: str
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    resign: bool = False  # TRANSFER_NOT_SENT only: "it can never land, sign it again"


class FragmentDrops(Switch, tag="fragment_drop"):
    endpoint: str
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    after_processing: bool = False  # the request takes effect (an order made, a payment sent); the answer is lost


class FragmentLandsLate(Switch, tag="fragment_lands_late"):
    """The next payment leaves the wallet, but the service sees it land only `seconds` later."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=600)]


class FragmentSlowLookups(Switch, tag="fragment_slow_lookups"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]
    times: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1


class FragmentUnknownUsers(Switch, tag="fragment_unknown_users"):
    """How the service says nobody has a username (`@nobody_here` in the sandbox)."""

    answer: str


class FragmentWrongOrder(Switch, tag="fragment_wrong_order"):
    """The next create_order is answered with the newest order the service already has."""


class HeleketRateLimited(Switch, tag="heleket_rate_limit"):
    on: bool
    retry_after: Annotated[int, msgspec.Meta(ge=1, le=600)] = 30


class HeleketSlowInfo(Switch, tag="heleket_info_latency"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]


class FragmentSlow(Switch, tag="fragment_latency"):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=60)]


class FragmentTonCost(Switch, tag="fragment_ton_cost"):
    """What Fragment asks in TON for orders created from now on: per star, or for one Premium package."""

    ton: Decimal
    months: int | None = None  # None: per star; 3, 6 or 12: that Premium package


class HeleketTonRate(Switch, tag="heleket_ton_rate"):
    """Heleket's USD price of one TON in its exchange-rate lists; null takes TON out of them (no rate)."""

    usd: Decimal | None


class WebhooksFail(Switch, tag="heleket_fail_webhooks"):
    count: Annotated[int, msgspec.Meta(ge=0, le=100)]


class WebhooksTwice(Switch, tag="heleket_duplicate_webhooks"):
    on: bool


Fault = (
    FragmentFails
    | FragmentDrops
    | FragmentSlow
    | FragmentLandsLate
    | FragmentSlowLookups
    | FragmentUnknownUsers
    | FragmentWrongOrder
    | FragmentTonCost
    | WebhooksFail
    | WebhooksTwice
    | HeleketRateLimited
    | HeleketSlowInfo
    | HeleketTonRate
)
# Bounds of the price switches: wide enough for any real market, narrow enough to catch a typo.
MAX_TON_PER_STAR = Decimal(1)
MAX_TON_PER_PREMIUM = Decimal(1000)
MAX_TON_USD = Decimal(100_000)


def checked_amount(value: Decimal, ceiling: Decimal, what: str) -> Decimal:
    """A positive, finite amount up to `ceiling`, or a 400 that says so."""
    if not value.is_finite() or value <= 0 or value > ceiling:
        raise fail(400, f"{what} must be a positive amount up to {ceiling}, not {value}")
    return value


def fail(status: int, detail: str) -> HTTPException:
    return HTTPException(status, detail)


def decode(raw: bytes, kind: Any) -> Any:
    """The body as kind, or a 400 that says what is wrong with it."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as error:
        raise fail(400, f"invalid request: {error}") from None
    except msgspec.DecodeError as error:
        raise fail(400, f"the body is not JSON: {error}") from None


def render_html(text: str, entities: list[MessageEntity] | None) -> str:
    """The message as HTML, from Telegram's text and entities (offsets in UTF-16 code units)."""
    units = text.encode("utf-16-le")
    opening: dict[int, list[MessageEntity]] = {}
    closing: dict[int, list[str]] = {}
    for entity in sorted(entities or [], key=lambda e: (e.offset, -e.length)):
        opening.setdefault(entity.offset, []).append(entity)
    out: list[str] = []
    bounds = sorted({0, len(units) // 2, *opening, *(e.offset + e.length for e in entities or [])})
    for start, end in itertools.pairwise(bounds):
        out.extend(reversed(closing.pop(start, [])))
        for entity in opening.get(start, []):
            tag, close = open_tag(entity, units[2 * start : 2 * (start + entity.length)].decode("utf-16-le"))
            out.append(tag)
            closing.setdefault(entity.offset + entity.length, []).append(close)
        out.append(html.escape(units[2 * start : 2 * end].decode("utf-16-le")))
    for rest in sorted(closing):
        out.extend(reversed(closing[rest]))
    return "".join(out).replace("\n", "<br>")


def open_tag(entity: MessageEntity, covered: str) -> tuple[str, str]:
    if entity.type in TAGS:
        return f"<{TAGS[entity.type]}>", f"</{TAGS[entity.type]}>"
    if entity.type == "spoiler":
        return '<span class="spoiler">', "</span>"
    if entity.type in ("text_link", "url"):
        target = local_url(entity.url or covered)
        return f'<a href="{html.escape(target)}" target="_blank" rel="noopener">', "</a>"
    if entity.type == "bot_command":
        return f'<a href="#" class="command" data-command="{html.escape(covered)}">', "</a>"
    return f'<span class="{html.escape(entity.type)}">', "</span>"


def local_url(url: str) -> str:
    """The chat's own payment page for a Heleket invoice link; any other URL unchanged."""
    found = HELEKET_PAGE.fullmatch(url)
    return f"/pay/{found.group(1)}" if found else url


def button_view(button: InlineKeyboardButton) -> dict[str, Any]:
    return {
        "text": button.text,
        "callback_data": button.callback_data,
        "url": local_url(button.url) if button.url else None,
    }


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
        self.switches: dict[str, Any] = {
            "fragment_latency": fragment.latency,
            "heleket_duplicate_webhooks": False,
            "fragment_unknown_users": fragment.unknown_user_answer,
            "heleket_rate_limited": False,
            "heleket_info_latency": 0.0,
            "fragment_ton_per_star": str(fragment.pricing.ton_per_star),
            "fragment_premium_ton": {
                str(months): str(ton) for months, ton in sorted(fragment.pricing.premium_ton.items())
            },
            "heleket_ton_usd": str(USD_PRICES["TON"]),
            "armed": [],
        }
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
                "users": [self.user_view(user_id) for user_id in sorted(self.telegram.users)],
                "fragment_endpoints": list(ENDPOINTS),
                "fragment_codes": sorted(STATUS_OF),
                "fragment_unknown_user_answers": list(UNKNOWN_USER_ANSWERS),
                "unknown_username": UNKNOWN_USERNAME,
                "promo_codes": SAMPLE_PROMO_CODES,
            }
        )

    async def post_user(self, request: Request) -> Response:
        asked = decode(await request.body(), NewUser)
        user_id = max([FIRST_USER_ID - 1, *self.telegram.users]) + 1
        self.add(user_id, asked)
        return JSONResponse(self.user_view(user_id), status_code=201)

    async def post_invitee(self, request: Request) -> Response:
        """A new test user who opens the bot through this user's referral link (`/start <payload>`)."""
        inviter = self.known_user(request)
        asked = decode(await request.body(), NewUser)
        try:
            code = await referral_code(self.shop.pool, inviter)
        except LookupError:
            raise fail(409, f"test user {inviter} has not talked to the bot yet: send /start first") from None
        user_id = max([FIRST_USER_ID - 1, *self.telegram.users]) + 1
        self.add(user_id, asked)
        self.telegram.send_text(user_id, f"/start {PAYLOAD_PREFIX}{code}")
        return JSONResponse(self.user_view(user_id), status_code=201)

    async def put_user(self, request: Request) -> Response:
        user_id = self.known_user(request)
        self.add(user_id, decode(await request.body(), NewUser))
        return JSONResponse(self.user_view(user_id))

    async def get_messages(self, request: Request) -> Response:
        user_id = self.known_user(request)
        messages = self.telegram.chat_messages(user_id, include_user=True)
        return JSONResponse({"messages": [self.message_view(message) for message in messages]})

    async def post_message(self, request: Request) -> Response:
        user_id = self.known_user(request)
        self.telegram.send_text(user_id, decode(await request.body(), SentText).text)
        return JSONResponse({"sent": True}, status_code=201)

    async def post_press(self, request: Request) -> Response:
        user_id = self.known_user(request)
        press = decode(await request.body(), Press)
        try:
            self.telegram.press_button(user_id, press.message_id, press.callback_data)
        except LookupError as error:
            raise fail(409, f"that button is no longer there: {error}") from None
        return JSONResponse({"pressed": True})

    def add(self, user_id: int, asked: NewUser) -> None:
        username = asked.username.removeprefix("@") if asked.username else None
        self.telegram.add_user(
            user_id, first_name=asked.first_name, username=username, language_code=asked.language_code
        )

    def known_user(self, request: Request) -> int:
        user_id: int = request.path_params["user_id"]
        if user_id not in self.telegram.users:
            raise fail(404, f"no test user {user_id}: create one first")
        return user_id

    def user_view(self, user_id: int) -> dict[str, Any]:
        user = self.telegram.users[user_id]
        return {
            "id": user.id,
            "first_name": user.first_name,
            "username": user.username,
            "language_code": user.language_code,
        }

    def message_view(self, message: Message) -> dict[str, Any]:
        mine = message.from_ is not None and message.from_.id == self.telegram.bot_id
        keyboard = message.reply_markup.inline_keyboard if message.reply_markup else []
        body = render_html(message.text or message.caption or "", message.entities or message.caption_entities)
        if message.photo:  # a photo (the admin's sales chart) is shown inline, its caption below it
            data = self.telegram.photo(message)
            kind = "png" if data.startswith(b"\x89PNG") else "jpeg"
            body = (
                f'<img src="data:image/{kind};base64,{base64.b64encode(data).decode()}" alt="photo" '
                f'style="max-width:100%;display:block">{body}'
            )
        return {
            "id": message.message_id,
            "from": "bot" if mine else "user",
            "date": message.date,
            "edited": message.edit_date is not None,
            "html": body,
            "keyboard": [[button_view(button) for button in row] for row in keyboard],
        }

    # --- Heleket's payment page --------------------------------------------------------------------------

    async def get_invoice(self, request: Request) -> Response:
        uuid = request.path_params["uuid"]
        invoice = self.heleket.invoices.get(uuid)
        if invoice is None:
            raise fail(404, f"no Heleket invoice {uuid}")
        return JSONResponse(msgspec.to_builtins(invoice))

    async def post_invoice(self, request: Request) -> Response:
        uuid, action = request.path_params["uuid"], request.path_params["action"]
        actions: dict[str, Callable[[str], Any]] = {
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

    def send_test_webhook(self, uuid: str) -> Any:
        """Heleket's test webhook for this invoice: a correctly signed `paid` that Heleket's own records do not
        bear out. The shop asks Heleket before it credits, so nothing is credited."""
        self.heleket.send_webhook(uuid, "paid")
        self.arm(f"Heleket test webhook 'paid' sent for invoice {uuid[:8]}…")
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
        payments = reversed(self.fragment.payments)
        return JSONResponse(
            {
                "balance": balance,
                "orders": [
                    {
                        "id": o.id,
                        "status": o.status,
                        "product": o.product,
                        "amount": o.amount,
                        "username": o.username,
                        "cost": o.cost,
                        "fee": o.fee,
                        "txid": o.txid,
                        "created_at": o.created_at,
                    }
                    for o in orders
                ],
                "payments": [
                    {
                        "order_ids": list(p.order_ids),
                        "ton": str(Decimal(p.amount_nano) / 10**9),
                        "outcome": p.outcome,
                        "transaction_hash": p.transaction_hash,
                        "time": p.time,
                    }
                    for p in payments
                ],
                "switches": self.switches,
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
        fault = decode(await request.body(), Fault)  # type: ignore[arg-type]
        if isinstance(fault, FragmentFails | FragmentDrops) and fault.endpoint not in ENDPOINTS:
            raise fail(400, f"no Fragment endpoint {fault.endpoint!r}; one of {', '.join(ENDPOINTS)}")
        match fault:
            case FragmentFails(endpoint=endpoint, code=code, times=times, resign=resign):
                if code not in STATUS_OF:
                    raise fail(400, f"no Fragment error code {code!r}; one of {', '.join(sorted(STATUS_OF))}")
                if resign and code != "TRANSFER_NOT_SENT":
                    raise fail(400, "resign goes with TRANSFER_NOT_SENT only")
                self.fragment.fail_next(endpoint, code, times=times, resign=resign)  # type: ignore[arg-type]
                self.arm(f"{endpoint}: {code}{' (sign again)' if resign else ''} ×{times}")
            case FragmentDrops(endpoint=endpoint, times=times, after_processing=after):
                self.fragment.drop_next(endpoint, times=times, after_processing=after)  # type: ignore[arg-type]
                self.arm(
                    f"{endpoint}: {'answer lost after it took effect' if after else 'connection dropped'} ×{times}"
                )
            case FragmentSlow(seconds=seconds):
                self.fragment.latency = seconds
                self.switches["fragment_latency"] = seconds
            case FragmentLandsLate(seconds=seconds):
                self.fragment.lands_late_next(after=seconds)
                self.arm(f"next payment lands {seconds:g} s late")
            case FragmentSlowLookups(seconds=seconds, times=times):
                self.fragment.delay_next("user_info", seconds, times=times)
                self.arm(f"user_info: {seconds:g} s late ×{times}")
            case FragmentUnknownUsers(answer=answer):
                if answer not in UNKNOWN_USER_ANSWERS:
                    raise fail(400, f"no answer {answer!r}; one of {', '.join(UNKNOWN_USER_ANSWERS)}")
                self.fragment.unknown_user_answer = answer  # type: ignore[assignment]
                self.switches["fragment_unknown_users"] = answer
            case FragmentWrongOrder():
                newest = max(self.fragment.orders.values(), key=lambda order: order.created_at, default=None)
                if newest is None:
                    raise fail(409, "the Fragment service has no order yet to answer with; buy something first")
                self.fragment.answer_next_create_with(newest.id)
                self.arm(f"create_order: answered with old order {newest.id}")
            case HeleketRateLimited(on=on, retry_after=retry_after):
                self.heleket.rate_limit(on, retry_after=str(retry_after))
                self.switches["heleket_rate_limited"] = on
            case HeleketSlowInfo(seconds=seconds):
                self.heleket.set_latency("/v1/payment/info", seconds)
                self.switches["heleket_info_latency"] = seconds
            case FragmentTonCost(ton=ton, months=None):
                self.fragment.set_ton_cost(per_star=checked_amount(ton, MAX_TON_PER_STAR, "a star's TON cost"))
                self.switches["fragment_ton_per_star"] = str(self.fragment.pricing.ton_per_star)
            case FragmentTonCost(ton=ton, months=months):
                if months not in PREMIUM_MONTHS:
                    raise fail(400, f"Premium comes in {', '.join(map(str, PREMIUM_MONTHS))} months, not {months}")
                ton = checked_amount(ton, MAX_TON_PER_PREMIUM, f"the TON cost of {months} months of Premium")
                self.fragment.set_ton_cost(premium={months: ton})
                self.switches["fragment_premium_ton"] = {
                    str(m): str(t) for m, t in sorted(self.fragment.pricing.premium_ton.items())
                }
            case HeleketTonRate(usd=usd):
                if usd is not None:
                    usd = checked_amount(usd, MAX_TON_USD, "TON's USD price")
                self.heleket.set_usd_price("TON", usd)
                self.switches["heleket_ton_usd"] = None if usd is None else str(usd)
            case WebhooksFail(count=count):
                self.heleket.fail_webhooks(count)
                self.arm(f"Heleket webhooks: next {count} attempts fail")
            case WebhooksTwice(on=on):
                self.heleket.duplicate_webhooks(on)
                self.switches["heleket_duplicate_webhooks"] = on
        return JSONResponse(self.switches)

    def arm(self, what: str) -> None:
        self.switches["armed"] = [what, *self.switches["armed"]][:10]

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
