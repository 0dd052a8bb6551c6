"""What an admin sees of a broadcast: the buttons of each step and the progress message, shared by the
compose flow (shopbot/bot/admin/broadcast_flow.py) and the sender (shopbot/bot/admin/broadcast_sender.py)."""

from __future__ import annotations

import asyncpg
import msgspec
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from shopbot.bot.admin.broadcasts import SEGMENTS, Broadcast
from shopbot.db.queries import queries
from shopbot.locales import Translator


class BroadcastStep(CallbackData, prefix="adm_bc"):
    """A step without an argument: new (also the admin menu's button), nobutton, quit."""

    action: str


class BroadcastPress(CallbackData, prefix="adm_bc"):
    """A step with an argument: segment <key>; send, pause, resume or cancel <broadcast id>. Strings, so a
    forged value is refused by our own check rather than by a parse error."""

    action: str
    arg: str


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """Where a broadcast's recipients stand."""

    total: int
    sent: int
    blocked: int
    failed: int
    unknown: int
    waiting: int  # pending, or being sent right now


async def recipient_counts(pool: asyncpg.Pool, broadcast_id: int) -> Counts:
    row = await queries.broadcasts.recipient_counts(pool, broadcast_id)
    return Counts(**{name: int(row[name]) for name in Counts.__struct_fields__})


def press(t: Translator, key: str, action: str, arg: str | int) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t(key), callback_data=BroadcastPress(action=action, arg=str(arg)).pack())


def quit_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=t("broadcast-quit"), callback_data=BroadcastStep(action="quit").pack())]
        ]
    )


def button_keyboard(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("broadcast-no-button"), callback_data=BroadcastStep(action="nobutton").pack()
                )
            ],
            [InlineKeyboardButton(text=t("broadcast-quit"), callback_data=BroadcastStep(action="quit").pack())],
        ]
    )


def segment_keyboard(t: Translator) -> InlineKeyboardMarkup:
    keys = list(SEGMENTS)
    rows = [
        [press(t, f"broadcast-segment-{key}", "segment", key) for key in keys[i : i + 2]]
        for i in range(0, len(keys), 2)
    ]
    rows.append([InlineKeyboardButton(text=t("broadcast-quit"), callback_data=BroadcastStep(action="quit").pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def confirm_screen(t: Translator, broadcast: Broadcast, recipients: int) -> tuple[str, InlineKeyboardMarkup]:
    """Under the preview: how many will get it, then Send or Cancel."""
    text = t(
        "broadcast-confirm", id=broadcast.id, segment=t(f"broadcast-segment-{broadcast.segment}"), count=recipients
    )
    return text, InlineKeyboardMarkup(
        inline_keyboard=[
            [press(t, "broadcast-send", "send", broadcast.id), press(t, "broadcast-cancel", "cancel", broadcast.id)]
        ]
    )


def progress_screen(t: Translator, broadcast: Broadcast, counts: Counts) -> tuple[str, InlineKeyboardMarkup | None]:
    """The admin's progress message: where the broadcast stands and what can still be done with it."""
    lines = [
        t(f"broadcast-state-{broadcast.state}", id=broadcast.id),
        t("broadcast-counts", sent=counts.sent, total=counts.total, blocked=counts.blocked, failed=counts.failed),
    ]
    if counts.unknown:
        lines.append(t("broadcast-unknown", count=counts.unknown))
    if broadcast.state in ("done", "cancelled") and counts.waiting:
        lines.append(t("broadcast-not-sent", count=counts.waiting))
    buttons: list[InlineKeyboardButton] = []
    if broadcast.state == "sending":
        buttons = [
            press(t, "broadcast-pause", "pause", broadcast.id),
            press(t, "broadcast-cancel", "cancel", broadcast.id),
        ]
    elif broadcast.state == "paused":
        buttons = [
            press(t, "broadcast-resume", "resume", broadcast.id),
            press(t, "broadcast-cancel", "cancel", broadcast.id),
        ]
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[buttons]) if buttons else None
