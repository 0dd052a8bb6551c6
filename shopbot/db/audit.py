"""The audit log: who did what to what, with the state before and after, and why. Append-only."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shopbot.db.queries import queries

_encoder = msgspec.json.Encoder(decimal_format="string")


async def record_audit(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    admin_id: int,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> int:
    """Append one entry (inside the caller's transaction when given a connection); its id."""
    entry_id: int = await queries.admin.record_audit(
        db,
        admin_id,
        action,
        target,
        None if before is None else _encoder.encode(before).decode(),
        None if after is None else _encoder.encode(after).decode(),
        reason,
    )
    return entry_id
