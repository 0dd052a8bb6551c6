"""The REST API under generated input (hypothesis): whatever a client sends, the answer is a clear
JSON refusal or a correct page, never a 500 and never another user's data.

Each example is one real request through the ASGI app to the real database; hypothesis runs in a
worker thread and hands every request to the test's event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import anyio.from_thread
import asyncpg
import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopbot.ledger.book import Ledger
from shopbot.lifecycle import Lifecycle
from shopbot.metrics import Metrics
from shopbot.web.api import api_routes
from shopbot.web.api_auth import mint_token
from shopbot.web.app import build_web_app
from shopbot.web.health import HealthChecks
from tests.web.helpers import ALL, ANN, BOB, SECRET, auth, config, open_client

pytestmark = pytest.mark.anyio
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
PARAMETERS = ("user_id", "type", "status", "limit", "cursor")
REFUSALS = {401, 403, 404, 422}

junk = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
numbers = st.integers(min_value=-(2**70), max_value=2**70).map(str)
values = st.one_of(
    junk,
    numbers,
    st.sampled_from(
        ["", "0", "1", "101", "recharge", "purchase", "all", "-1", "1e3", "0x10", " 5", "５", "null", "[]", "%00"]
    ),
)
queries = st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), junk.filter(bool)), values, max_size=6)


def run_in_loop(request: Callable[[], Any]) -> httpx.Response:
    return anyio.from_thread.run(request)


async def in_thread(check: Callable[[], None]) -> None:
    await anyio.to_thread.run_sync(check)


def assert_clear(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code != 500 and answer.status_code < 600
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    if answer.status_code in REFUSALS:
        assert isinstance(body["error"], str) and body["error"]
    if answer.status_code == 422:
        assert body["field"] and body["field"] in body["error"]
    return body


async def test_generated_queries_get_a_page_or_a_named_field(client: httpx.AsyncClient) -> None:
    headers = auth(mint_token(SECRET, scopes=ALL, user_id=None, ttl_seconds=3600))

    @EXAMPLES
    @given(query=queries)
    def check(query: dict[str, str]) -> None:
        answer = run_in_loop(lambda: client.get("/api/v1/transactions?" + urlencode(query), headers=headers))
        body = assert_clear(answer)
        assert answer.status_code in (200, 404, 422), answer.text
        if answer.status_code == 200:
            assert len(body["transactions"]) <= int(query.get("limit") or 50)
            if query.get("status"):
                assert {t["status"] for t in body["transactions"]} <= {query["status"]}

    await in_thread(check)


async def test_generated_paths_never_fail(pool: asyncpg.Pool, ledger: Ledger) -> None:
    # The whole web app, as served: its 404s for paths no route takes are JSON too.
    app = build_web_app(HealthChecks(Lifecycle()), Metrics(), api_routes(config(), pool, ledger))
    async with await open_client(app) as client:
        await paths_never_fail(client)


async def paths_never_fail(client: httpx.AsyncClient) -> None:
    headers = auth(mint_token(SECRET, scopes=ALL, user_id=None, ttl_seconds=3600))

    @EXAMPLES
    @given(user=st.one_of(junk.filter(bool), numbers))
    def check(user: str) -> None:
        answer = run_in_loop(lambda: client.get(f"/api/v1/users/{quote(user, safe='')}/balance", headers=headers))
        if answer.status_code == 404 and not answer.headers["content-type"].startswith("application/json"):
            pytest.fail(f"an HTML 404 for {user!r}")
        assert_clear(answer)

    await in_thread(check)


claims = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.one_of(st.integers(-(2**40), 2**40), junk, st.floats(allow_nan=True), st.none()),
        "scope": st.one_of(
            st.sampled_from(["balance:read", "transactions:read", " ".join(ALL), ""]), junk, st.lists(junk, max_size=3)
        ),
        "sub": st.one_of(st.integers(-(2**70), 2**70).map(str), junk, st.integers(-5, 2**70)),
        "user_id": st.one_of(st.integers(-(2**70), 2**70), junk, st.booleans()),
    },
)


async def test_generated_tokens_never_reach_another_users_money(client: httpx.AsyncClient) -> None:
    @EXAMPLES
    @given(
        payload=claims,
        key=st.sampled_from([SECRET, "w" * 64, ""]),
        algorithm=st.sampled_from(["HS256", "HS512"]),
        mangle=st.sampled_from(["none", "flip", "truncate", "as-is"]),
    )
    def check(payload: dict[str, Any], key: str, algorithm: str, mangle: str) -> None:
        try:
            token = jwt.encode(payload, key, algorithm=algorithm)
        except (TypeError, ValueError, jwt.PyJWTError):
            token = "x.y.z"
        if mangle == "flip":
            token = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
        elif mangle == "truncate":
            token = token[: len(token) // 2]
        elif mangle == "none":
            token = ".".join(token.split(".")[:2]) + "."
        answer = run_in_loop(lambda: client.get(f"/api/v1/users/{ANN}/balance", headers=auth(token)))
        assert_clear(answer)
        valid = (
            mangle == "as-is"
            and key == SECRET
            and algorithm == "HS256"
            and isinstance(payload.get("exp"), int)
            and payload["exp"] > time.time()
        )
        if answer.status_code == 200:
            # Only a genuine, unexpired token with the scope and (if any) this user reads the balance.
            assert valid and "balance:read" in str(payload.get("scope", "")).split()
            assert str(payload.get("sub", ANN)) == str(ANN) or "sub" not in payload
            assert payload.get("user_id", ANN) in (ANN, str(ANN))
        else:
            assert answer.status_code in (401, 403), answer.text

    await in_thread(check)


async def test_generated_headers_are_refused_clearly(client: httpx.AsyncClient) -> None:
    @EXAMPLES
    @given(
        value=st.one_of(
            junk, st.builds(lambda t: "Bearer " + t, junk), st.just("Bearer"), st.builds(lambda t: "Basic " + t, junk)
        )
    )
    def check(value: str) -> None:
        safe = value.encode("latin-1", "ignore").strip()  # what a header can carry on the wire
        answer = run_in_loop(lambda: client.get(f"/api/v1/transactions?user_id={BOB}", headers={"Authorization": safe}))
        assert_clear(answer)
        assert answer.status_code == 401, answer.text

    await in_thread(check)
