"""Broadcasts as the shop stores them: a draft an admin composed, its segment, the message every recipient
gets, and the admin's state changes (start, pause, resume, cancel), each audited with the state before and
after. The sending itself is shopbot/bot/admin/broadcast_sender.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import msgspec
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from shopbot.db.audit import record_audit
from shopbot.db.queries import queries

MAX_BUTTON_TEXT = 64
MAX_URL = 2048
# The segments an admin can choose: (language, active within days); each has a text "broadcast-segment-<key>".
SEGMENTS: dict[str, tuple[str | None, int | None]] = {
    "all": (None, None),
    "en": ("en", None),
    "ru": ("ru", None),
    "7d": (None, 7),
    "30d": (None, 30),
}
# Which states an admin's press may move a broadcast from, and to.
CHANGES: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("sending",), "paused"),
    "resume": (("paused",), "sending"),
    "cancel": (("draft", "sending", "paused"), "cancelled"),
}


class Broadcast(msgspec.Struct, frozen=True, kw_only=True):
    """One broadcast row."""

    id: int
    admin_id: int
    admin_language: str
    text: str  # HTML, as the admin's message rendered it
    button_text: str | None
    button_url: str | None
    segment_language: str | None
    segment_active_days: int | None
    state: str
    total: int
    sent: int
    blocked: int
    failed: int
    unknown: int
    progress_chat_id: int | None
    progress_message_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Broadcast:
        return cls(**{name: row[name] for name in cls.__struct_fields__})

    @property
    def segment(self) -> str:
        """The key of the segment, as SEGMENTS names it."""
        wanted = (self.segment_language, self.segment_active_days)
        return next((key for key, value in SEGMENTS.items() if value == wanted), "all")

    def markup(self) -> InlineKeyboardMarkup | None:
        """The button under the message, if the admin gave one."""
        if self.button_text is None or self.button_url is None:
            return None
        return InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=self.button_text, url=self.button_url)]]
        )

    def summary(self) -> dict[str, Any]:
        """What the audit log keeps of it."""
        return {
            "state": self.state,
            "segment": self.segment,
            "total": self.total,
            "sent": self.sent,
            "blocked": self.blocked,
            "failed": self.failed,
            "unknown": self.unknown,
        }


def parse_button(line: str) -> tuple[str, str] | None:
    """ "Text | https://example.com" as (text, url); None when it is not that."""
    text, bar, url = line.rpartition("|")
    text, url = text.strip(), url.strip()
    if not bar or not text or len(text) > MAX_BUTTON_TEXT or "\n" in text:
        return None
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > MAX_URL
        or any(c.isspace() for c in url)
    ):
        return None
    return text, url


async def count_segment(pool: asyncpg.Pool, segment: str) -> int:
    """How many users the segment holds now (the snapshot at the start may differ slightly)."""
    language, days = SEGMENTS[segment]
    return int(await queries.broadcasts.count_segment(pool, language, days))


async def create_draft(
    pool: asyncpg.Pool, *, admin_id: int, admin_language: str, text: str, button: tuple[str, str] | None, segment: str
) -> Broadcast:
    language, days = SEGMENTS[segment]
    button_text, button_url = button or (None, None)
    row = await queries.broadcasts.create_draft(
        pool, admin_id, admin_language, text, button_text, button_url, language, days
    )
    return Broadcast.from_row(row)


async def get_broadcast(pool: asyncpg.Pool, broadcast_id: int) -> Broadcast | None:
    row = await queries.broadcasts.get_broadcast(pool, broadcast_id)
    return None if row is None else Broadcast.from_row(row)


async def start_broadcast(
    pool: asyncpg.Pool, broadcast_id: int, *, admin_id: int, progress_chat_id: int, progress_message_id: int
) -> Broadcast | None:
    """Draft → sending with its recipients fixed, audited, in one transaction; None when it is no draft."""
    async with pool.acquire() as conn, conn.transaction():
        row = await queries.broadcasts.start_broadcast(conn, broadcast_id, progress_chat_id, progress_message_id)
        if row is None:
            return None
        total = await queries.broadcasts.snapshot_recipients(conn, broadcast_id)
        started = msgspec.structs.replace(Broadcast.from_row(row), total=int(total))
        await record_audit(
            conn,
            admin_id=admin_id,
            action="broadcast.start",
            target=f"broadcast:{broadcast_id}",
            before={"state": "draft"},
            after=started.summary(),
        )
        return started


async def change_broadcast(pool: asyncpg.Pool, broadcast_id: int, change: str, *, admin_id: int) -> Broadcast | None:
    """Pause, resume or cancel, audited; None when the broadcast is not in a state that allows it."""
    sources, target = CHANGES[change]
    async with pool.acquire() as conn, conn.transaction():
        before = await queries.broadcasts.lock_broadcast(conn, broadcast_id)
        row = await queries.broadcasts.change_state(conn, broadcast_id, list(sources), target)
        if row is None or before is None:
            return None
        changed = Broadcast.from_row(row)
        await record_audit(
            conn,
            admin_id=admin_id,
            action=f"broadcast.{change}",
            target=f"broadcast:{broadcast_id}",
            before=Broadcast.from_row(before).summary(),
            after=changed.summary(),
        )
        return changed
