"""Named queries: the file format, and every query in sql/queries/ prepares against the schema."""

from __future__ import annotations

import re

import asyncpg
import pytest

from shopbot.db.queries import load_queries, parse_queries, queries

# Statements PostgreSQL will not prepare (utility commands); they are run by their own tests.
NOT_PREPARABLE = {("bootstrap", "create_shop_database"), ("migrations", "create_migrations_table")}


def test_suffixes_choose_the_result_shape() -> None:
    parsed = parse_queries(
        "-- a comment\n-- name: all_rows\nSELECT 1;\n-- name: one^\nSELECT 1;\n"
        "-- name: value$\nSELECT 1;\n-- name: run!\nSELECT 1;\n",
        "x.sql",
    )
    assert {name: q.kind for name, q in parsed.items()} == {
        "all_rows": "rows",
        "one": "row",
        "value": "value",
        "run": "execute",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;\n-- name: a\nSELECT 2;", "SQL before the first"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;", "defined twice"),
        ("-- name: a\n-- name: b\nSELECT 2;", "has no SQL"),
    ],
)
def test_malformed_query_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_queries(text, "bad.sql")


async def test_every_query_prepares_against_the_migrated_schema(pool: asyncpg.Pool) -> None:
    checked = 0
    async with pool.acquire() as conn:
        for namespace, group in vars(load_queries()).items():
            for name, query in vars(group).items():
                if (namespace, name) in NOT_PREPARABLE:
                    continue
                await conn.prepare(query.sql)
                checked += 1
    assert checked >= 5


async def test_user_upsert_keeps_a_chosen_language(pool: asyncpg.Pool) -> None:
    big_id = 7_000_000_000  # Telegram ids beyond 2^31 exist
    row = await queries.users.upsert_user(pool, big_id, "ann", "Ann", None, "ru", False)
    assert row["is_new"] and row["language"] == "ru"
    await pool.execute("UPDATE users SET language = 'en', language_set = true WHERE id = $1", big_id)
    row = await queries.users.upsert_user(pool, big_id, "ann2", "Ann", None, "ru", True)
    assert not row["is_new"]
    assert (row["language"], row["username"], row["is_premium"]) == ("en", "ann2", True)


async def test_the_order_states_listed_are_those_the_orders_table_allows(pool: asyncpg.Pool) -> None:
    """The metrics and the dashboard take the states from orders_by_state: it must list each state the CHECK
    on orders.state allows, once, and no other."""
    listed = [row["state"] for row in await queries.orders.orders_by_state(pool, None)]
    check = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'orders'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%(state = ANY%'"
    )
    allowed = re.findall(r"'([a-z_]+)'::text", check)
    assert len(allowed) == 6
    assert len(listed) == len(set(listed)) and sorted(listed) == sorted(allowed)
