"""Admin broadcasts as an admin and the shop's users live them, through the Telegram emulator: compose,
preview, send at the configured pace, survive a restart without messaging anyone twice, skip users who
blocked the bot, honour Telegram's flood wait once for everyone, and reach only the chosen segment."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import anyio
import asyncpg
import pytest

from shopbot.config import load_config
from shopbot.config.schema import BroadcastConfig, ShutdownConfig
from shopbot.db.queries import queries
from shopbot.errors import ConfigError
from shopbot.sandbox.telegram import RecordedCall, TelegramEmulator
from shopbot.sandbox.telegram_wire import Message, MessageEntity
from tests.shop_harness import TOKEN, ShopUnderTest, running_shop

ADMIN = 9001
ADMINS = {"admin_ids": (ADMIN,)}
TEXT = "Big sale today: 20% off Stars"
SENT_HTML = "<b>Big sale</b> today: 20% off Stars"  # what the admin's bold becomes on the wire
BOLD = [MessageEntity(type="bold", offset=0, length=8)]
# The admin's previews (recorded calls, by identity): the same message as the broadcast, but not part of it.
_previews: set[int] = set()


class Admin:
    """The admin in their private chat with the shop: types, and presses buttons the bot really sent."""

    def __init__(self, shop: ShopUnderTest) -> None:
        self.shop = shop
        shop.telegram.add_user(ADMIN, first_name="Boss")

    @property
    def telegram(self) -> TelegramEmulator:
        return self.shop.telegram

    async def send(self, text: str, entities: list[MessageEntity] | None = None) -> Message:
        self.telegram.send_text(ADMIN, text, entities=entities)
        return await self.next_message()

    async def next_message(self, *, preview: bool = False, after: int = 0) -> Message:
        """The bot's next message to the admin: a reply, or (preview=True) the preview of a broadcast. The
        admin also receives each broadcast like any user; those deliveries are neither."""
        call = await self.telegram.wait_for_call(
            "sendMessage",
            predicate=lambda c: (
                c.params["chat_id"] == ADMIN
                and (c.params["text"] == SENT_HTML) == preview
                and c.ok
                and c.result["message_id"] > after
            ),
        )
        if preview:
            _previews.add(id(call))
        return self.message(call.result["message_id"])

    def message(self, message_id: int) -> Message:
        return next(m for m in self.telegram.chat_messages(ADMIN) if m.message_id == message_id)

    async def press(self, message: Message, label: str) -> RecordedCall:
        buttons = message.reply_markup.buttons() if message.reply_markup else []
        [button] = [b for b in buttons if label in b.text]
        assert button.callback_data is not None
        return await self.press_data(message, button.callback_data)

    async def press_data(self, message: Message, data: str, *, forged: bool = False) -> RecordedCall:
        press = self.telegram.forge_press if forged else self.telegram.press_button
        query = press(ADMIN, message.message_id, data).callback_query
        assert query is not None
        return await self.telegram.wait_for_call(
            "answerCallbackQuery", predicate=lambda c: c.params["callback_query_id"] == query.id
        )

    async def compose(self, *, segment: str = "Everyone", button: str | None = None) -> tuple[Message, Message]:
        """/broadcast through to the confirmation; the preview and the confirmation (Send / Cancel)."""
        await self.send("/broadcast")
        ask_button = await self.send(TEXT, BOLD)
        if button is None:
            await self.press(ask_button, "No button")
            segments = self.message(ask_button.message_id)
        else:
            segments = await self.send(button)
        await self.press(segments, segment)
        preview = await self.next_message(preview=True, after=segments.message_id)
        return preview, await self.next_message(after=preview.message_id)

    async def report(self, broadcast_id: int, timeout: float = 60) -> str:
        """The final report message, once the broadcast is over."""
        call = await self.telegram.wait_for_call(
            "sendMessage",
            timeout=timeout,
            predicate=lambda c: c.params["chat_id"] == ADMIN and f"Broadcast #{broadcast_id}: " in c.params["text"],
        )
        return str(call.result["text"])


async def add_users(
    pool: asyncpg.Pool, telegram: TelegramEmulator, ids: Iterable[int], *, language: str = "en", days_ago: int = 0
) -> list[int]:
    """Users the shop has seen before (rows in `users`) with a chat in the emulator."""
    ids = list(ids)
    await pool.executemany(
        "INSERT INTO users (id, first_name, language, last_seen_at) "
        "VALUES ($1, 'User', $2, now() - make_interval(days => $3))",
        [(user_id, language, days_ago) for user_id in ids],
    )
    for user_id in ids:
        telegram.add_user(user_id, language_code=language)
    return ids


def broadcast_calls(telegram: TelegramEmulator) -> list[RecordedCall]:
    """Every attempt to deliver the broadcast text, in the order Telegram answered them."""
    return [
        c
        for c in telegram.calls
        if c.method == "sendMessage" and c.params.get("text") == SENT_HTML and id(c) not in _previews
    ]


def delivered_to(telegram: TelegramEmulator) -> list[int]:
    return [c.params["chat_id"] for c in broadcast_calls(telegram) if c.ok]


def assert_paced(calls: list[RecordedCall], rate: float) -> None:
    """Never a burst above the rate (a small margin over any 1 s window), and no faster than the rate overall."""
    times = sorted(c.time for c in calls)
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= rate + 5, f"{busiest} messages within one second at a rate of {rate}/s"
    assert times[-1] - times[0] >= (len(times) - 1) / rate * 0.9


async def test_a_broadcast_to_300_users_survives_a_restart_without_messaging_anyone_twice(database_url: str) -> None:
    rate = 30.0
    telegram = TelegramEmulator(token=TOKEN)
    settings = {"telegram_keys": ADMINS, "broadcast": BroadcastConfig(rate=rate, progress_seconds=1)}
    async with running_shop(database_url, telegram, **settings) as shop:
        users = await add_users(shop.shop.pool, telegram, range(1000, 1300))
        admin = Admin(shop)
        preview, confirm = await admin.compose(button="Open the shop | https://example.com/shop")
        # The preview is the message exactly as users get it: the admin's bold kept, the button under it.
        assert (preview.text, preview.entities) == (TEXT, BOLD)
        assert preview.reply_markup is not None
        [link] = preview.reply_markup.buttons()
        assert (link.text, link.url) == ("Open the shop", "https://example.com/shop")
        assert "It goes to 301 users" in (confirm.text or "")  # the admin is a user of the shop too
        broadcast_id = int((confirm.text or "").split("#")[1].split(" ")[0])
        answer = await admin.press(confirm, "Send")
        assert answer.params["text"] == "Sending started: 301 recipients."
        with anyio.fail_after(30):
            while len(delivered_to(telegram)) < 100:
                await anyio.sleep(0.05)
        # The confirmation became the progress message, and it keeps up (every second here).
        with anyio.fail_after(5):
            while "Sent: 0 of 301" in (admin.message(confirm.message_id).text or ""):
                await anyio.sleep(0.05)
        progress = admin.message(confirm.message_id)
        assert (progress.text or "").startswith(f"📣 Broadcast #{broadcast_id}: sending…")
        assert progress.reply_markup is not None
        assert [b.text for b in progress.reply_markup.buttons()] == ["⏸ Pause", "✖️ Cancel"]
    # Stopped gracefully mid-way: every message that left was recorded, none is in doubt.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        states = dict(await pool.fetch("SELECT state, count(*) FROM broadcast_recipients GROUP BY state"))
        assert states.get("sent", 0) >= 100 and states.get("pending", 0) > 0, states
        assert "sending" not in states and "unknown" not in states
        assert (await queries.broadcasts.get_broadcast(pool, broadcast_id))["state"] == "sending"
    finally:
        await pool.close()

    async with running_shop(database_url, telegram, **settings) as shop:
        admin = Admin(shop)
        report = await admin.report(broadcast_id)
        assert "finished" in report and "Sent: 301 of 301" in report and "Blocked the bot: 0 · Failed: 0" in report
        chats = delivered_to(telegram)
        assert sorted(chats) == sorted([*users, ADMIN])  # everyone once, nobody twice
        assert len(broadcast_calls(telegram)) == 301  # no attempt was repeated either
        delivered = telegram.chat_messages(users[-1])[-1]
        assert delivered.text == TEXT and delivered.entities == BOLD
        assert_paced(broadcast_calls(telegram), rate)
        # The same progress message, carried across the restart, ends with the totals and no buttons.
        final = admin.message(confirm.message_id)
        assert (final.text or "").startswith(f"✅ Broadcast #{broadcast_id}: finished") and final.reply_markup is None
        [audit] = await shop.shop.pool.fetch("SELECT * FROM audit_log WHERE action = 'broadcast.start'")
        assert (audit["admin_id"], audit["target"]) == (ADMIN, f"broadcast:{broadcast_id}")
        assert '"total": 301' in audit["after"] and '"draft"' in audit["before"]


async def test_a_crash_between_sending_and_recording_never_sends_that_message_again(database_url: str) -> None:
    telegram = TelegramEmulator(token=TOKEN)
    settings = {
        "telegram_keys": ADMINS,
        "broadcast": BroadcastConfig(rate=10, progress_seconds=1),
        "shutdown": ShutdownConfig(grace_seconds=0.5),
    }
    async with running_shop(database_url, telegram, **settings) as shop:
        await add_users(shop.shop.pool, telegram, range(2000, 2020))
        admin = Admin(shop)
        _, confirm = await admin.compose()
        await admin.press(confirm, "Send")
        with anyio.fail_after(10):
            while len(delivered_to(telegram)) < 3:
                await anyio.sleep(0.02)
        telegram.delay_next("sendMessage", 60)  # Telegram takes the next message and answers too late
        with anyio.fail_after(10):
            while not await shop.shop.pool.fetchval(
                "SELECT count(*) FROM broadcast_recipients WHERE state = 'sending' AND claimed_at < now() - "
                "interval '0.3 s'"
            ):
                await anyio.sleep(0.02)
    # The shop was stopped with that answer outstanding: the grace period ran out and cut it off. Every other
    # message on its way was recorded; this one cannot be.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        [in_doubt] = await pool.fetch("SELECT user_id FROM broadcast_recipients WHERE state = 'sending'")
    finally:
        await pool.close()
    async with running_shop(database_url, telegram, **settings) as shop:
        admin = Admin(shop)
        report = await admin.report(1)
        assert "Sent: 20 of 21" in report
        assert "Possibly not delivered (the shop stopped while sending them; not sent again): 1" in report
        row = await shop.shop.pool.fetchrow(
            "SELECT state FROM broadcast_recipients WHERE user_id = $1", in_doubt["user_id"]
        )
        assert row["state"] == "unknown"
        # Never sent again after the restart; everyone else exactly once.
        assert [c.params["chat_id"] for c in broadcast_calls(telegram)].count(in_doubt["user_id"]) == 0
        chats = delivered_to(telegram)
        assert len(chats) == len(set(chats)) == 20


async def test_users_who_blocked_the_bot_are_skipped_counted_and_left_out_next_time(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys=ADMINS, broadcast=BroadcastConfig(rate=30)) as shop:
        pool = shop.shop.pool
        users = await add_users(pool, shop.telegram, range(3000, 3010))
        blocked = users[:3]
        for user_id in blocked:
            shop.telegram.block_bot(user_id)
        admin = Admin(shop)
        _, confirm = await admin.compose()
        await admin.press(confirm, "Send")
        report = await admin.report(1)
        assert "Sent: 8 of 11" in report and "Blocked the bot: 3 · Failed: 0" in report
        assert sorted(delivered_to(shop.telegram)) == sorted([*users[3:], ADMIN])
        assert await pool.fetchval("SELECT count(*) FROM users WHERE blocked_at IS NOT NULL") == 3

        # Next time they are not even tried, except one who came back and wrote to the shop.
        shop.telegram.block_bot(blocked[0], blocked=False)
        shop.telegram.send_text(blocked[0], "/start")
        await shop.telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == blocked[0])
        attempts = len(broadcast_calls(shop.telegram))
        _, confirm = await admin.compose()
        assert "It goes to 9 users" in (confirm.text or "")
        await admin.press(confirm, "Send")
        report = await admin.report(2)
        assert "Sent: 9 of 9" in report
        later = [c.params["chat_id"] for c in broadcast_calls(shop.telegram)[attempts:]]
        assert blocked[0] in later and not set(blocked[1:]) & set(later)


async def test_a_flood_wait_pauses_every_send_once_then_the_same_user_gets_it(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys=ADMINS, broadcast=BroadcastConfig(rate=30)) as shop:
        users = await add_users(shop.shop.pool, shop.telegram, range(4000, 4040))
        admin = Admin(shop)
        _, confirm = await admin.compose()
        await admin.press(confirm, "Send")
        with anyio.fail_after(10):
            while len(delivered_to(shop.telegram)) < 5:
                await anyio.sleep(0.01)
        shop.telegram.fail_next("sendMessage", error_code=429, retry_after=2)
        report = await admin.report(1)
        assert "Sent: 41 of 41" in report
        calls = broadcast_calls(shop.telegram)
        [flood] = [c for c in calls if c.status == 429]
        # Nobody was sent anything during the pause (a send already on its way may land just after the 429).
        assert not [c for c in calls if flood.time + 0.5 < c.time < flood.time + 1.9]
        assert [c for c in calls if c.time >= flood.time + 1.9]
        # One pause for everyone, not one per user: no other gap of that length.
        gaps = [b.time - a.time for a, b in itertools.pairwise(calls)]
        assert sum(1 for gap in gaps if gap > 1.5) == 1
        # The user whose message was refused got it after the pause, once.
        assert delivered_to(shop.telegram).count(flood.params["chat_id"]) == 1
        assert sorted(delivered_to(shop.telegram)) == sorted([*users, ADMIN])


async def test_a_segment_reaches_only_its_users(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys=ADMINS, broadcast=BroadcastConfig(rate=30)) as shop:
        pool = shop.shop.pool
        english = await add_users(pool, shop.telegram, range(5000, 5005))
        russian = await add_users(pool, shop.telegram, range(5100, 5104), language="ru")
        dormant = await add_users(pool, shop.telegram, range(5200, 5203), language="ru", days_ago=20)
        admin = Admin(shop)
        _, confirm = await admin.compose(segment="Russian speakers")
        assert "to: Russian speakers" in (confirm.text or "") and "It goes to 7 users" in (confirm.text or "")
        await admin.press(confirm, "Send")
        assert "Sent: 7 of 7" in await admin.report(1)
        assert sorted(delivered_to(shop.telegram)) == sorted([*russian, *dormant])

        before = len(broadcast_calls(shop.telegram))
        _, confirm = await admin.compose(segment="Active in 7 days")
        await admin.press(confirm, "Send")
        assert "Sent: 10 of 10" in await admin.report(2)  # the admin was active just now
        later = [c.params["chat_id"] for c in broadcast_calls(shop.telegram)[before:]]
        assert sorted(later) == sorted([*english, *russian, ADMIN])


async def test_bad_input_and_stale_presses_get_clear_answers_and_change_nothing(database_url: str) -> None:
    async with running_shop(database_url, telegram_keys=ADMINS, broadcast=BroadcastConfig(rate=30)) as shop:
        pool = shop.shop.pool
        telegram = shop.telegram
        # A user who is no admin: /broadcast is an unknown command to them, the admin button a stale one.
        telegram.add_user(77, first_name="Eve")
        telegram.send_text(77, "/broadcast")
        reply = await telegram.wait_for_call("sendMessage", predicate=lambda c: c.params["chat_id"] == 77)
        assert "I did not understand that" in reply.params["text"]
        menu = telegram.chat_messages(77)[-1]
        query = telegram.forge_press(77, menu.message_id, "adm_bc:new").callback_query
        assert query is not None
        answer = await telegram.wait_for_call(
            "answerCallbackQuery", predicate=lambda c: c.params["callback_query_id"] == query.id
        )
        assert answer.params["text"] == "This button is out of date. Please open the menu again."
        to_eve = [c.params["text"] for c in telegram.calls if c.method == "sendMessage" and c.params["chat_id"] == 77]
        assert not [text for text in to_eve if "broadcast" in text.lower()]

        admin = Admin(shop)
        await admin.send("/broadcast")
        ask_button = await admin.send(TEXT, BOLD)
        for bad in (
            "Open the shop https://example.com",
            "Open | ftp://example.com",
            " | https://example.com",
            "Open | https://",
        ):
            refused = await admin.send(bad)
            assert (refused.text or "").startswith("That is not a button.")
        segments = await admin.send("Open | https://example.com")
        assert segments.text == "Who should get it?"
        # "No button" under the earlier question no longer applies: the button was given since.
        stale = await admin.press(ask_button, "No button")
        assert stale.params["text"] == "This button is out of date. Start a new broadcast with /broadcast."
        await admin.press(segments, "Everyone")
        await admin.next_message(preview=True)
        confirm = await admin.next_message()
        assert confirm.reply_markup is not None
        send_data = next(b.callback_data for b in confirm.reply_markup.buttons() if "Send" in b.text)
        assert send_data is not None

        # Cancel the draft, then a Send press on that stale preview (an old client still shows it) sends nothing.
        cancelled = await admin.press(confirm, "Cancel")
        assert cancelled.params["text"] == "Cancelled."
        assert admin.message(confirm.message_id).text == "Broadcast #1 cancelled. Nothing was sent."
        again = await admin.press_data(confirm, send_data, forged=True)
        assert again.params["text"] == "Broadcast #1 is cancelled: this button no longer applies."
        for forged in ("adm_bc:send:999", "adm_bc:send:x", "adm_bc:pause:1", "adm_bc:segment:nobody"):
            answer = await admin.press_data(confirm, forged, forged=True)
            assert "no longer applies" in answer.params["text"] or "out of date" in answer.params["text"]
        await anyio.sleep(1.5)  # the sender would have picked it up by now
        assert await pool.fetchval("SELECT count(*) FROM broadcast_recipients") == 0
        assert not broadcast_calls(telegram)
        actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
        assert actions == ["broadcast.cancel"]


async def test_pause_resume_and_cancel_from_the_progress_message(database_url: str) -> None:
    async with running_shop(
        database_url, telegram_keys=ADMINS, broadcast=BroadcastConfig(rate=10, progress_seconds=1)
    ) as shop:
        users = await add_users(shop.shop.pool, shop.telegram, range(6000, 6040))
        admin = Admin(shop)
        _, confirm = await admin.compose()
        await admin.press(confirm, "Send")
        with anyio.fail_after(10):
            while len(delivered_to(shop.telegram)) < 5:
                await anyio.sleep(0.01)
        paused = await admin.press(admin.message(confirm.message_id), "Pause")
        assert paused.params["text"] == "Paused."
        at_pause = len(delivered_to(shop.telegram))
        await anyio.sleep(1.5)
        assert len(delivered_to(shop.telegram)) <= at_pause + 2  # a message or two may have been on its way
        progress = admin.message(confirm.message_id)
        assert (progress.text or "").startswith("⏸ Broadcast #1: paused")
        await admin.press(progress, "Resume")
        with anyio.fail_after(10):
            while len(delivered_to(shop.telegram)) < at_pause + 5:
                await anyio.sleep(0.01)
        await admin.press(admin.message(confirm.message_id), "Cancel")
        report = await admin.report(1)
        assert report.startswith("✖️ Broadcast #1: cancelled") and "Not sent: " in report
        sent = delivered_to(shop.telegram)
        assert len(sent) == len(set(sent)) < len(users)
        actions = [r["action"] for r in await shop.shop.pool.fetch("SELECT action FROM audit_log ORDER BY id")]
        assert actions == ["broadcast.start", "broadcast.pause", "broadcast.resume", "broadcast.cancel"]


def test_a_rate_above_telegrams_limit_is_refused_by_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "shopbot.toml"
    path.write_text("[broadcast]\nrate = 50\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert any("broadcast" in problem and "rate" in problem for problem in caught.value.problems)
    assert load_config(path, {"SHOPBOT_BROADCAST__RATE": "20"}).broadcast.rate == 20
