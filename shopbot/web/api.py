"""The read-only REST API under /api/v1: a user's balance, the ledger's movements, its OpenAPI document.

Every answer is JSON. Refusals come in a fixed order: the API is off (401), the token is bad
(401) or lacks the scope (403), a query value is bad (422 naming the field), the token's user is
not the one asked about (403). Amounts are decimal strings, never floats. Nothing here moves money.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopbot.config.schema import Config
from shopbot.db.queries import queries
from shopbot.ledger.book import Ledger
from shopbot.ledger.model import MovementType
from shopbot.web.api_auth import MAX_USER_ID, AccessDenied, Grant, bearer_token, check_token, secret_problem

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
TYPES = tuple(str(t) for t in MovementType)
# pending: money still reserved for an order in progress; completed: every other movement.
STATUSES = ("pending", "completed")
_DIGITS = re.compile(r"[0-9]{1,19}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,40}")
_CURSOR_PREFIX = "m"


class BalanceOut(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    currency: str
    available: str
    held: str


class TransactionOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    type: str
    reference: str
    user_id: int
    currency: str
    amount: str
    available: str
    held: str
    status: str
    created_at: datetime


class TransactionPage(msgspec.Struct, frozen=True, kw_only=True):
    transactions: list[TransactionOut]
    next_cursor: str | None


class BadQuery(Exception):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


_encoder = msgspec.json.Encoder()
Handler = Callable[[Request], Awaitable[Response]]


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json", headers=headers)


def _refusal(refused: AccessDenied) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="shopbot"'} if refused.status == 401 else None
    return _json({"error": refused.reason}, refused.status, headers)


def _answering(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except AccessDenied as refused:
            return _refusal(refused)
        except BadQuery as bad:
            return _json({"error": f"invalid {bad.field}: {bad.detail}", "field": bad.field}, 422)

    return answer


def _amount(value: Decimal) -> str:
    return format(value, "f")  # str() would say "0E-8" for a NUMERIC(24, 8) zero


def _encode_cursor(movement_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{movement_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise BadQuery("cursor", "not a cursor this API gave out")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise BadQuery("cursor", "not a cursor this API gave out") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not _DIGITS.fullmatch(digits) or not 0 < int(digits) <= MAX_USER_ID:
        raise BadQuery("cursor", "not a cursor this API gave out")
    return int(digits)


def _user_id(value: str, field: str = "user_id") -> int:
    if not _DIGITS.fullmatch(value) or not 0 < int(value) <= MAX_USER_ID:
        raise BadQuery(field, "expected a positive integer user id")
    return int(value)


def _limit(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadQuery("limit", f"expected an integer from 1 to {MAX_LIMIT}")
    return int(value)


def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    """The query's values by name; unknown or repeated names are refused, empty values dropped."""
    found: dict[str, str] = {}
    for name in request.query_params:
        if name not in allowed:
            raise BadQuery(name[:40], "unknown parameter")
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise BadQuery(name, "given more than once")
        if values[0]:
            found[name] = values[0]
    return found


def api_routes(config: Config, pool: asyncpg.Pool, ledger: Ledger) -> list[Route]:
    """The API's routes; without a usable `[api] jwt_secret` one route answers 401 to everything."""
    secret = config.api.jwt_secret.reveal()
    off = secret_problem(secret)
    if off:
        reason = off
        log.warning("%s; the REST API answers 401 to every request", reason)

        async def on_api_off(_: Request) -> Response:
            return _refusal(AccessDenied(401, reason))

        return [Route("/api/v1/{rest:path}", on_api_off)]

    def authorize(request: Request, scope: str) -> Grant:
        grant = check_token(bearer_token(request.headers.get("authorization")), secret)
        grant.require(scope)
        return grant

    @_answering
    async def on_get_balance(request: Request) -> Response:
        grant = authorize(request, "balance:read")
        _query(request, set())
        user_id = _user_id(request.path_params["user_id"])
        grant.require_user(user_id)
        if not await queries.api.user_exists(pool, user_id):
            return _json({"error": f"no user {user_id}"}, 404)
        balance = await ledger.balance(user_id)
        return _json(
            BalanceOut(
                user_id=user_id,
                currency=ledger.currency,
                available=_amount(balance.available),
                held=_amount(balance.held),
            )
        )

    @_answering
    async def on_get_transactions(request: Request) -> Response:
        grant = authorize(request, "transactions:read")
        params = _query(request, {"user_id", "type", "status", "limit", "cursor"})
        user_id = _user_id(params["user_id"]) if "user_id" in params else grant.user_id
        type_ = params.get("type")
        if type_ is not None and type_ not in TYPES:
            raise BadQuery("type", f"expected one of {', '.join(TYPES)}")
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise BadQuery("status", f"expected one of {', '.join(STATUSES)}")
        limit = _limit(params["limit"]) if "limit" in params else DEFAULT_LIMIT
        before = _decode_cursor(params["cursor"]) if "cursor" in params else None
        if user_id is not None:
            grant.require_user(user_id)
        # One row more than asked says whether there is a next page.
        rows = await queries.api.transactions_page(pool, user_id, type_, before, limit + 1, status)
        shown = rows[:limit]
        page = TransactionPage(
            transactions=[
                TransactionOut(
                    id=row["id"],
                    type=row["type"],
                    reference=row["reference"],
                    user_id=row["user_id"],
                    currency=row["currency"],
                    amount=_amount(row["amount"]),
                    available=_amount(row["available"]),
                    held=_amount(row["held"]),
                    status=row["status"],
                    created_at=row["created_at"],
                )
                for row in shown
            ],
            next_cursor=_encode_cursor(shown[-1]["id"]) if len(rows) > limit else None,
        )
        return _json(page)

    openapi = _encoder.encode(openapi_document())

    async def on_get_openapi(_: Request) -> Response:
        return Response(openapi, media_type="application/json")

    return [
        Route("/api/v1/users/{user_id}/balance", on_get_balance, methods=["GET"]),
        Route("/api/v1/transactions", on_get_transactions, methods=["GET"]),
        Route("/api/v1/openapi.json", on_get_openapi, methods=["GET"]),
    ]


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 description of the routes above, written by hand."""
    amount = {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "decimal, never a float"}
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    }

    def answer(description: str, schema: object) -> dict[str, object]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def refusals(*extra: str) -> dict[str, dict[str, object]]:
        said = {
            "401": "no API (no secret configured), or a missing, expired, unsigned or malformed token",
            "403": "the token lacks the scope, or is scoped to another user",
            "422": "a bad query value; `field` names it",
            "404": "no such user",
        }
        codes = ["401", "403", "422", *extra]
        return {code: answer(said[code], {"$ref": "#/components/schemas/Error"}) for code in codes}

    def responses(ok: dict[str, object], *extra: str) -> dict[str, dict[str, object]]:
        """A route's answers: its 200, then the refusals it can give."""
        return {"200": ok, **refusals(*extra)}

    user_id = {"type": "integer", "minimum": 1, "maximum": MAX_USER_ID}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shopbot API",
            "version": "1",
            "description": "Read-only access to balances and ledger movements.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/users/{user_id}/balance": {
                "get": {
                    "operationId": "getBalance",
                    "summary": "A user's balance: spendable and held for orders in progress.",
                    "description": "Needs the balance:read scope; a user-scoped token reads only its own user.",
                    "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": user_id}],
                    "responses": responses(answer("the balance", {"$ref": "#/components/schemas/Balance"}), "404"),
                }
            },
            "/api/v1/transactions": {
                "get": {
                    "operationId": "listTransactions",
                    "summary": "Ledger movements touching users' accounts, newest first.",
                    "description": (
                        "Needs the transactions:read scope. A user-scoped token reads only its own "
                        "user (the default user_id); a token without a user may omit user_id to "
                        "list every user's movements. Pass next_cursor back as cursor for the next page."
                    ),
                    "parameters": [
                        {"name": "user_id", "in": "query", "required": False, "schema": user_id},
                        {"name": "type", "in": "query", "required": False, "schema": {"enum": list(TYPES)}},
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "schema": {"enum": list(STATUSES)},
                            "description": "pending: money still reserved for an order in progress",
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
                            "description": "opaque; the next_cursor of the previous page",
                        },
                    ],
                    "responses": responses(answer("one page", {"$ref": "#/components/schemas/TransactionPage"})),
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "HS256, exp required; scopes in a space-separated `scope` claim "
                        "(balance:read, transactions:read); `sub` (a user id) makes it user-scoped."
                    ),
                }
            },
            "schemas": {
                "Error": error,
                "Balance": {
                    "type": "object",
                    "required": ["user_id", "currency", "available", "held"],
                    "properties": {
                        "user_id": user_id,
                        "currency": {"type": "string"},
                        "available": amount,
                        "held": amount,
                    },
                },
                "Transaction": {
                    "type": "object",
                    "required": [
                        "id",
                        "type",
                        "reference",
                        "user_id",
                        "currency",
                        "amount",
                        "available",
                        "held",
                        "status",
                        "created_at",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "type": {"enum": list(TYPES)},
                        "reference": {"type": "string"},
                        "user_id": user_id,
                        "currency": {"type": "string"},
                        "amount": {**amount, "description": "signed change of the user's money (available + held)"},
                        "available": {**amount, "description": "signed change of the spendable balance"},
                        "held": {**amount, "description": "signed change of the held balance"},
                        "status": {
                            "enum": list(STATUSES),
                            "description": "pending: money still reserved for an order in progress",
                        },
                        "created_at": {"type": "string", "format": "date-time"},
                    },
                },
                "TransactionPage": {
                    "type": "object",
                    "required": ["transactions", "next_cursor"],
                    "properties": {
                        "transactions": {"type": "array", "items": {"$ref": "#/components/schemas/Transaction"}},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
