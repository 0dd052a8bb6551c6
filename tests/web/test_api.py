"""The REST API over a real migrated database: what a token holder reads, and every refusal."""

from __future__ import annotations

import base64
import json
import logging
import time
from decimal import Decimal as D

import asyncpg
import httpx
import jwt
import pytest
from starlette.applications import Starlette

from shopbot.ledger.book import Ledger
from shopbot.ledger.model import MovementType, SystemAccount
from shopbot.web.api import api_routes
from shopbot.web.api_auth import mint_token
from tests.web.helpers import ALL, ANN, BOB, EVE, SECRET, admin, auth, config, open_client


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_balance_is_read_as_decimal_strings(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"/api/v1/users/{ANN}/balance", headers=admin())
    assert answer.status_code == 200
    # 78 in top-ups + 0.5 bonus - 3.25 captured - 2 held + 1 released
    assert answer.json() == {"user_id": ANN, "currency": "USD", "available": "74.25000000", "held": "1.00000000"}
    empty = await client.get(f"/api/v1/users/{EVE}/balance", headers=admin())
    assert empty.json() == {"user_id": EVE, "currency": "USD", "available": "0.00000000", "held": "0.00000000"}


async def test_balance_of_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/users/999/balance", headers=admin())
    assert answer.status_code == 404 and "999" in answer.json()["error"]


async def test_transactions_are_signed_for_the_user_newest_first(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/transactions", params={"user_id": ANN, "limit": 5}, headers=admin())
    assert answer.status_code == 200
    page = answer.json()
    shown = [(t["type"], t["reference"], t["amount"], t["available"], t["held"]) for t in page["transactions"]]
    assert shown == [
        ("refund", "order:2", "0.00000000", "1.00000000", "-1.00000000"),
        ("purchase", "order:2", "0.00000000", "-2.00000000", "2.00000000"),
        ("purchase", "order:1", "-3.25000000", "0.00000000", "-3.25000000"),
        ("purchase", "order:1", "0.00000000", "-3.25000000", "3.25000000"),
        ("bonus", "promo:1", "0.50000000", "0.50000000", "0.00000000"),
    ]
    assert all(t["user_id"] == ANN and t["currency"] == "USD" for t in page["transactions"])
    ids = [t["id"] for t in page["transactions"]]
    assert ids == sorted(ids, reverse=True)
    assert page["next_cursor"]


async def test_type_filter(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/transactions", params={"user_id": ANN, "type": "purchase"}, headers=admin())
    assert [t["type"] for t in answer.json()["transactions"]] == ["purchase"] * 3
    assert answer.json()["next_cursor"] is None


async def test_status_filter_tells_money_still_reserved_from_settled(client: httpx.AsyncClient) -> None:
    pending = (await client.get(f"/api/v1/transactions?user_id={ANN}&status=pending", headers=admin())).json()
    # order:2 held 2 and released 1: its hold is still reserving 1; order:1 was captured.
    assert [(t["reference"], t["held"], t["status"]) for t in pending["transactions"]] == [
        ("order:2", "2.00000000", "pending")
    ]
    completed = (
        await client.get(f"/api/v1/transactions?user_id={ANN}&status=completed&limit=100", headers=admin())
    ).json()["transactions"]
    everything = (await client.get(f"/api/v1/transactions?user_id={ANN}&limit=100", headers=admin())).json()
    assert len(completed) + 1 == len(everything["transactions"])
    assert all(t["status"] == "completed" for t in completed)
    refused = await client.get(f"/api/v1/transactions?user_id={ANN}&status=paid", headers=admin())
    assert refused.status_code == 422 and refused.json()["field"] == "status"


async def test_keyset_pages_have_no_duplicates_or_gaps(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    everything = (
        await client.get("/api/v1/transactions", params={"user_id": ANN, "limit": 100}, headers=admin())
    ).json()
    assert len(everything["transactions"]) == 17 and everything["next_cursor"] is None
    for limit in (1, 4, 17):
        seen: list[int] = []
        params: dict[str, object] = {"user_id": ANN, "limit": limit}
        pages = 0
        while True:
            page = (await client.get("/api/v1/transactions", params=params, headers=admin())).json()
            assert len(page["transactions"]) <= limit
            seen += [t["id"] for t in page["transactions"]]
            pages += 1
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == [t["id"] for t in everything["transactions"]]
        assert pages == -(-17 // limit)
    # A movement posted after the first page was read does not shift the pages behind it.
    first = (await client.get("/api/v1/transactions", params={"user_id": ANN, "limit": 3}, headers=admin())).json()
    await Ledger(pool, "USD").credit(
        user_id=ANN,
        amount=D(1),
        key="late",
        type=MovementType.RECHARGE,
        reference="invoice:late",
        source=SystemAccount.HELEKET_CLEARING,
    )
    second = (
        await client.get(
            "/api/v1/transactions", params={"user_id": ANN, "limit": 3, "cursor": first["next_cursor"]}, headers=admin()
        )
    ).json()
    assert [t["id"] for t in second["transactions"]] == [t["id"] for t in everything["transactions"][3:6]]


async def test_an_operator_token_lists_every_user(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/v1/transactions", params={"limit": 100}, headers=admin())).json()
    assert {t["user_id"] for t in page["transactions"]} == {ANN, BOB}
    assert len(page["transactions"]) == 18


async def test_a_user_token_reads_only_its_own_user(client: httpx.AsyncClient) -> None:
    bob = auth(mint_token(SECRET, scopes=ALL, user_id=BOB, ttl_seconds=60))
    assert (await client.get(f"/api/v1/users/{BOB}/balance", headers=bob)).json()["available"] == "7.00000000"
    own = (await client.get("/api/v1/transactions", headers=bob)).json()  # user_id defaults to the token's
    assert [(t["user_id"], t["reference"]) for t in own["transactions"]] == [(BOB, "invoice:100")]
    for path, params in (
        (f"/api/v1/users/{ANN}/balance", {}),
        ("/api/v1/transactions", {"user_id": ANN}),
        ("/api/v1/users/999/balance", {}),
    ):
        answer = await client.get(path, params=params, headers=bob)
        assert answer.status_code == 403, path
        assert "own user" in answer.json()["error"]
    # the user may also come as an integer user_id claim
    claims = {"scope": "balance:read", "user_id": BOB, "exp": int(time.time()) + 60}
    as_claim = auth(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert (await client.get(f"/api/v1/users/{ANN}/balance", headers=as_claim)).status_code == 403
    assert (await client.get(f"/api/v1/users/{BOB}/balance", headers=as_claim)).status_code == 200


def _bad_tokens() -> list[tuple[str, str, int, str]]:
    now = int(time.time())
    # Built when tests are collected, which on a busy machine can be minutes before they run.
    good = {"scope": " ".join(ALL), "exp": now + 3600}
    header, payload = b64({"alg": "HS256", "typ": "JWT"}), b64(good)
    return [
        ("expired", jwt.encode({**good, "exp": now - 5}, SECRET, algorithm="HS256"), 401, "expired"),
        ("alg none", f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", 401, "HS256"),
        ("alg none signed", f"{b64({'alg': 'none'})}.{payload}.{b64({'x': 1})}", 401, "HS256"),
        ("unsigned", f"{header}.{payload}.", 401, "signature"),
        ("wrong secret", jwt.encode(good, "w" * 64, algorithm="HS256"), 401, "signature"),
        ("HS512 with our secret", jwt.encode(good, SECRET, algorithm="HS512"), 401, "HS256"),
        ("malformed", "not-a-token", 401, "malformed"),
        ("malformed segments", "a.b.c", 401, "malformed"),
        ("payload not json", f"{header}.{base64.urlsafe_b64encode(b'[1').decode()}.x", 401, "malformed"),
        ("missing exp", jwt.encode({"scope": " ".join(ALL)}, SECRET, algorithm="HS256"), 401, "exp"),
        ("exp not a number", jwt.encode({**good, "exp": "soon"}, SECRET, algorithm="HS256"), 401, "malformed"),
        ("sub not a user", jwt.encode({**good, "sub": "ann"}, SECRET, algorithm="HS256"), 401, "sub"),
        ("scope not a string", jwt.encode({**good, "scope": ALL}, SECRET, algorithm="HS256"), 401, "scope"),
        (
            "sub and user_id disagree",
            jwt.encode({**good, "sub": str(ANN), "user_id": BOB}, SECRET, algorithm="HS256"),
            401,
            "disagree",
        ),
        ("wrong scope", jwt.encode({**good, "scope": "orders:write"}, SECRET, algorithm="HS256"), 403, "scope"),
        ("no scope", jwt.encode({"exp": now + 3600}, SECRET, algorithm="HS256"), 403, "scope"),
    ]


@pytest.mark.parametrize(("case", "token", "status", "says"), _bad_tokens(), ids=[c[0] for c in _bad_tokens()])
@pytest.mark.parametrize("path", [f"/api/v1/users/{ANN}/balance", f"/api/v1/transactions?user_id={ANN}"])
async def test_bad_tokens_are_refused(
    client: httpx.AsyncClient, case: str, token: str, status: int, says: str, path: str
) -> None:
    answer = await client.get(path, headers=auth(token))
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert token not in answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_with_one_scope_reads_only_that(client: httpx.AsyncClient) -> None:
    balance_only = admin(["balance:read"])
    assert (await client.get(f"/api/v1/users/{ANN}/balance", headers=balance_only)).status_code == 200
    answer = await client.get("/api/v1/transactions", headers=balance_only)
    assert answer.status_code == 403 and "transactions:read" in answer.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "token abc"},
    ],
)
async def test_missing_or_foreign_authorization_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    answer = await client.get(f"/api/v1/users/{ANN}/balance", headers=headers)
    assert answer.status_code == 401 and "Bearer" in answer.json()["error"]


@pytest.mark.parametrize(("secret", "says"), [("", "set [api] jwt_secret"), ("short", "at least 32 bytes")])
async def test_without_a_usable_secret_the_api_is_off(
    pool: asyncpg.Pool, ledger: Ledger, secret: str, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shopbot.web.api"):
        app = Starlette(routes=api_routes(config(secret), pool, ledger))
    assert [r.getMessage() for r in caplog.records if says in r.getMessage()]
    async with await open_client(app) as client:
        for path in (f"/api/v1/users/{ANN}/balance", "/api/v1/transactions", "/api/v1/openapi.json", "/api/v1/x"):
            answer = await client.get(path, headers=admin())
            assert answer.status_code == 401, path
            assert answer.json()["error"].startswith("the API is off") and says in answer.json()["error"]
        if not secret:
            answer = await client.get("/api/v1/transactions")
            assert answer.json() == {"error": "the API is off: set [api] jwt_secret"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/users/ann/balance", "user_id"),
        ("/api/v1/users/0/balance", "user_id"),
        ("/api/v1/users/-5/balance", "user_id"),
        ("/api/v1/users/99999999999999999999/balance", "user_id"),
        ("/api/v1/users/%D9%A1/balance", "user_id"),  # an Arabic-Indic one: int() would take it
        (f"/api/v1/users/{ANN}/balance?limit=3", "limit"),
        ("/api/v1/transactions?user_id=abc", "user_id"),
        ("/api/v1/transactions?user_id=1_0", "user_id"),
        ("/api/v1/transactions?user_id=1&user_id=2", "user_id"),
        ("/api/v1/transactions?limit=0", "limit"),
        ("/api/v1/transactions?limit=101", "limit"),
        ("/api/v1/transactions?limit=-1", "limit"),
        ("/api/v1/transactions?limit=ten", "limit"),
        ("/api/v1/transactions?limit=1e2", "limit"),
        ("/api/v1/transactions?type=gift", "type"),
        ("/api/v1/transactions?type=RECHARGE", "type"),
        ("/api/v1/transactions?cursor=***", "cursor"),
        ("/api/v1/transactions?cursor=bTA", "cursor"),  # "m0"
        ("/api/v1/transactions?cursor=eDEy", "cursor"),  # "x12"
        ("/api/v1/transactions?cursor=A", "cursor"),  # not base64 at all
        ("/api/v1/transactions?cursor=" + "m" * 41, "cursor"),
        ("/api/v1/transactions?status=paid", "status"),
    ],
)
async def test_bad_query_values_are_422_naming_the_field(client: httpx.AsyncClient, path: str, field: str) -> None:
    answer = await client.get(path, headers=admin())
    assert answer.status_code == 422
    assert answer.json()["field"] == field and field in answer.json()["error"]


ODD_QUERIES = [
    "",
    "?",
    "?&&",
    "?=",
    "?user_id",
    "?user_id=",
    "?limit=",
    "?cursor=",
    "?type=",
    "?user_id=%00",
    "?user_id=%FF%FE",
    "?user_id=9223372036854775807",
    "?user_id=9223372036854775808",
    "?limit=00020",
    "?limit=%2B5",
    "?limit=5%20",
    "?limit=%EF%BC%95",
    "?cursor=bTk5OTk5OTk5OTk5OTk5OTk5OTk5",
    "?cursor=====",
    "?cursor=bTE",
    "?cursor=%F0%9F%92%B8",
    "?type=recharge&type=bonus",
    "?type=purchase%00",
    "?a[]=1&b=2",
    "?user_id=101&limit=100&cursor=bTE&type=refund",
    "?" + "x" * 5000 + "=1",
    "?user_id=" + "9" * 400,
    "?%=%",
    "?user_id=1;DROP TABLE users",
    "?limit=1.0",
    "?limit=0x10",
    "?user_id=١٠١",
]


@pytest.mark.parametrize("query", ODD_QUERIES)
async def test_odd_queries_never_fail_the_server(client: httpx.AsyncClient, query: str) -> None:
    for path in ("/api/v1/transactions", f"/api/v1/users/{ANN}/balance", "/api/v1/users/%00/balance"):
        answer = await client.get(path + query, headers=admin())
        assert answer.status_code < 500, (path, query, answer.text)
        assert answer.headers["content-type"] == "application/json"
        answer.json()


async def test_openapi_document_describes_both_endpoints(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = json.loads(answer.content)
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/api/v1/users/{user_id}/balance", "/api/v1/transactions"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    listed = {p["name"] for p in document["paths"]["/api/v1/transactions"]["get"]["parameters"]}
    assert listed == {"user_id", "type", "status", "limit", "cursor"}


def test_mint_token_refuses_what_the_api_would_not_accept() -> None:
    with pytest.raises(ValueError, match="jwt_secret"):
        mint_token("", scopes=ALL, user_id=None, ttl_seconds=60)
    with pytest.raises(ValueError, match="32 bytes"):
        mint_token("short", scopes=ALL, user_id=None, ttl_seconds=60)
    with pytest.raises(ValueError, match="scopes"):
        mint_token(SECRET, scopes=["orders:write"], user_id=None, ttl_seconds=60)
    with pytest.raises(ValueError, match="ttl"):
        mint_token(SECRET, scopes=ALL, user_id=None, ttl_seconds=0)
    claims = jwt.decode(mint_token(SECRET, scopes=ALL, user_id=ANN, ttl_seconds=90), SECRET, algorithms=["HS256"])
    assert claims["scope"] == "balance:read transactions:read" and claims["sub"] == str(ANN)
    assert 85 <= claims["exp"] - time.time() <= 90


def test_the_cli_mints_a_token_the_api_accepts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import jwt as pyjwt

    from tests.ops.serve_process import run_cli

    secret = "s" * 40
    config = tmp_path / "shopbot.toml"
    config.write_text(f'[api]\njwt_secret = "{secret}"\n')
    result = run_cli("--config", str(config), "api", "token", "--scope", "balance:read", "--user", "7", "--ttl", "60")
    assert result.returncode == 0, result.stderr
    claims = pyjwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["scope"], claims["sub"]) == ("balance:read", "7")
    config.write_text("")
    off = run_cli("--config", str(config), "api", "token", "--scope", "balance:read")
    assert off.returncode == 1 and "api.jwt_secret: not set" in off.stderr
