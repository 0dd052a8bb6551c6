"""Small helpers for tests that move money."""

from __future__ import annotations

import asyncpg

from shopbot.db.queries import queries


async def make_user(pool: asyncpg.Pool, user_id: int, first_name: str = "Test") -> int:
    await queries.users.upsert_user(pool, user_id, None, first_name, None, "en", False)
    return user_id
