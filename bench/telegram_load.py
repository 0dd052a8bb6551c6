"""The Telegram emulator under load: users with one update in flight each, and the Bot API call that
completes each update seen the moment the emulator answers it.

An update from a user is complete when the bot's reply reaches the emulator: for a typed message the first
sendMessage into that chat after it, for a button press the answerCallbackQuery for that press (aiogram's
CallbackAnswerMiddleware answers after the handler ran, so the screen was already edited). Each user has at
most one update in flight, so a reply is never attributed to the wrong update.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from bench.common import check
from shopbot.sandbox.telegram import TelegramEmulator


@dataclass
class Flight:
    kind: str  # "text" or "press"
    sent: float
    query_id: str | None = None


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, for updates sent after `since`
    completed: int = 0
    since: float = 0.0


class LoadTelegram(TelegramEmulator):
    """The emulator keeping only what a benchmark needs (no call log: it would grow by the megabyte)."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token)
        self.in_flight: dict[int, Flight] = {}
        self.by_query: dict[str, int] = {}
        self.last_message: dict[int, int] = {}  # chat -> id of the bot's latest sent message
        self.buttons: dict[int, tuple[int, list[str]]] = {}  # chat -> (message id, callback data) of the latest
        self.methods: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.texts_seen: deque[str] = deque(maxlen=2000)
        self.tally = Tally()
        self.idle_users: deque[int] = deque()
        self.on_complete: Any = None  # called with the chat id after each completion

    async def _call(self, token: str, method: str, raw: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        status, body = await super()._call(token, method, raw)
        self.calls.clear()
        name = method.lower()
        if name == "getupdates":
            return status, body
        self.methods[name] += 1
        if not body.get("ok"):
            self.failures[f"{name}: {body.get('description')}"] += 1
            return status, body
        result = body.get("result")
        if name in ("sendmessage", "editmessagetext") and isinstance(result, dict):
            chat = int(result["chat"]["id"])
            self._note_message(chat, result, sent=name == "sendmessage")
            if name == "sendmessage":
                flight = self.in_flight.get(chat)
                if flight is not None and flight.kind == "text":
                    self._complete(chat, flight)
        elif name == "answercallbackquery":
            query_id = str(raw.get("callback_query_id"))
            chat_of_query = self.by_query.pop(query_id, None)
            if chat_of_query is not None:
                flight = self.in_flight.get(chat_of_query)
                if flight is not None and flight.query_id == query_id:
                    self._complete(chat_of_query, flight)
        return status, body

    def _note_message(self, chat: int, message: dict[str, Any], *, sent: bool) -> None:
        if sent:
            self.last_message[chat] = int(message["message_id"])
        text = message.get("text")
        if isinstance(text, str):
            self.texts_seen.append(text)
        markup = message.get("reply_markup") or {}
        data = [
            button["callback_data"]
            for row in markup.get("inline_keyboard", [])
            for button in row
            if button.get("callback_data")
        ]
        if data:
            self.buttons[chat] = (int(message["message_id"]), data)

    def _complete(self, chat: int, flight: Flight) -> None:
        del self.in_flight[chat]
        done = time.perf_counter()
        if flight.sent >= self.tally.since:
            self.tally.completed += 1
            self.tally.latencies.append(done - flight.sent)
        if self.on_complete is not None:
            self.on_complete(chat)

    # --- what users do --------------------------------------------------------------------------------

    def type(self, user: int, text: str) -> None:
        self.in_flight[user] = Flight("text", time.perf_counter())
        self.send_text(user, text)

    def press(self, user: int, data: str, message_id: int | None = None) -> None:
        """Press a button with this data under the bot's latest message (Telegram does not check the data)."""
        target = message_id if message_id is not None else self.last_message[user]
        update = self.forge_press(user, target, data)
        assert update.callback_query is not None
        query_id = update.callback_query.id
        self.by_query[query_id] = user
        self.in_flight[user] = Flight("press", time.perf_counter(), query_id)

    def measure_from_now(self) -> Tally:
        """Start a fresh tally: only updates sent from now on count."""
        self.tally = Tally(since=time.perf_counter())
        return self.tally

    async def drain(self, timeout: float) -> None:
        """Wait until no update is in flight."""
        with anyio.move_on_after(timeout):
            while self.in_flight:
                await anyio.sleep(0.02)


async def confirmations(telegram: LoadTelegram, users: range, timeout: float) -> dict[int, tuple[int, str]]:
    """Each buyer's confirmation: its message and the Confirm button's data."""
    found: dict[int, tuple[int, str]] = {}
    with anyio.move_on_after(timeout):
        while len(found) < len(users):
            for user in users:
                message_id, data = telegram.buttons.get(user, (0, []))
                confirm = [d for d in data if d.startswith("buy-ok:stars:")]
                if confirm:
                    found[user] = (message_id, confirm[0])
            await anyio.sleep(0.1)
    check(len(found) == len(users), f"only {len(found)} of {len(users)} buyers saw a confirmation in {timeout:.0f} s")
    return found
