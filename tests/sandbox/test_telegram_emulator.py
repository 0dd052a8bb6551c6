"""The Bot API emulator, driven by the real aiogram client over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.abc
import httpx
import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.types import Message as AiogramMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopbot.sandbox.telegram import CallNotMade, TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.telegram_wire import MessageEntity
from shopbot.web.asgi import serve_asgi

TOKEN = "123456:TEST-emulator-token"
USER = 42


@dataclass
class Served:
    emulator: TelegramEmulator
    base_url: str

    def bot(self, token: str = TOKEN) -> Bot:
        return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(self.base_url)))


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    emulator = TelegramEmulator(token=TOKEN, webhook_retry_seconds=0.05)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, emulator)
        yield Served(emulator, f"http://127.0.0.1:{port}")
        group.cancel_scope.cancel()


@pytest.fixture
async def bot(served: Served) -> AsyncIterator[Bot]:
    bot = served.bot()
    yield bot
    await bot.session.close()


async def test_get_me_returns_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "shopbot_test_bot")


async def test_start_with_payload_reaches_a_command_start_handler(served: Served, bot: Bot) -> None:
    router = Router(name="start")
    seen: list[str | None] = []

    @router.message(CommandStart(deep_link=True))
    async def on_start(message: AiogramMessage, command: CommandObject) -> None:
        seen.append(command.args)
        await message.answer(f"welcome, {message.from_user.first_name if message.from_user else '?'}")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    served.emulator.add_user(USER, first_name="Ann", username="ann")
    served.emulator.send_text(USER, "/start promo42")
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.entities is not None
    assert (update.message.entities[0].type, update.message.entities[0].length) == ("bot_command", 6)
    await dispatcher.feed_update(bot, update)
    assert seen == ["promo42"]
    call = await served.emulator.wait_for_call("sendMessage")
    assert call.params == {"chat_id": USER, "text": "welcome, Ann"}
    assert [m.text for m in served.emulator.chat_messages(USER)] == ["welcome, Ann"]


async def test_offset_confirms_and_drops_updates(served: Served, bot: Bot) -> None:
    ids = [served.emulator.send_text(USER, f"hello {n}").update_id for n in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]
    assert [u.update_id for u in await bot.get_updates(offset=ids[1] + 1)] == ids[2:]
    assert await bot.get_updates(offset=ids[2] + 1) == []
    assert served.emulator.send_text(USER, "later").update_id > ids[2]


async def test_long_poll_returns_early_on_an_update_and_empty_after_its_timeout(served: Served, bot: Bot) -> None:
    started = anyio.current_time()
    assert await bot.get_updates(timeout=1) == []
    assert anyio.current_time() - started >= 0.9

    received: list[int] = []

    async def poll() -> None:
        received.extend(update.update_id for update in await bot.get_updates(timeout=10))

    async with anyio.create_task_group() as group:
        group.start_soon(poll)
        await anyio.sleep(0.3)  # the poll is parked by now
        update = served.emulator.send_text(USER, "ping")
        injected = anyio.current_time()
    assert received == [update.update_id]
    assert anyio.current_time() - injected < 0.5


async def test_a_second_poller_ends_the_first_with_a_conflict(served: Served, bot: Bot) -> None:
    other = served.bot()
    try:
        async with anyio.create_task_group() as group:

            async def first_poll() -> None:
                with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
                    await bot.get_updates(timeout=5)

            group.start_soon(first_poll)
            await anyio.sleep(0.2)
            assert await other.get_updates(timeout=0) == []
    finally:
        await other.session.close()


async def test_pressing_an_inline_button_yields_a_callback_query_on_that_message(served: Served, bot: Bot) -> None:
    served.emulator.add_user(USER)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Buy 50 Stars", callback_data="buy:stars:50"),
                InlineKeyboardButton(text="Help", url="https://example.org/help"),
            ]
        ]
    )
    sent = await bot.send_message(USER, "Pick a pack", reply_markup=keyboard)
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump(exclude_none=True) == keyboard.model_dump(exclude_none=True)
    served.emulator.press_button(USER, sent.message_id, "buy:stars:50")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "buy:stars:50" and query.from_user.id == USER
    assert isinstance(query.message, AiogramMessage)
    assert (query.message.message_id, query.message.text) == (sent.message_id, "Pick a pack")
    assert await bot.answer_callback_query(query.id, text="ok") is True
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(LookupError, match="no button with callback_data 'buy:stars:99'"):
        served.emulator.press_button(USER, sent.message_id, "buy:stars:99")


async def test_edits_show_in_chat_messages_and_a_no_op_edit_is_refused(served: Served, bot: Bot) -> None:
    served.emulator.add_user(USER)
    keyboard = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Pay", callback_data="pay")]])
    sent = await bot.send_message(USER, "Order #1: pending", reply_markup=keyboard)
    await bot.edit_message_text(
        "Order #1: <b>paid</b>", chat_id=USER, message_id=sent.message_id, parse_mode="HTML", reply_markup=keyboard
    )
    [message] = served.emulator.chat_messages(USER)
    assert (message.text, message.edit_date is not None) == ("Order #1: paid", True)
    assert message.entities is not None and message.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Order #1: <b>paid</b>", chat_id=USER, message_id=sent.message_id, parse_mode="HTML", reply_markup=keyboard
        )
    # As in Telegram, an edit without reply_markup drops the inline keyboard.
    await bot.edit_message_text("Order #1: done", chat_id=USER, message_id=sent.message_id)
    assert served.emulator.chat_messages(USER)[0].reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)
    assert await bot.delete_message(USER, sent.message_id) is True
    assert served.emulator.chat_messages(USER) == []


async def test_bad_requests_carry_telegrams_descriptions(served: Served, bot: Bot) -> None:
    served.emulator.add_user(USER)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "hello")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "  ")
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "" at byte offset 6'):
        await bot.send_message(USER, "price < 5", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            USER,
            "x",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
            ),
        )


async def test_an_unknown_token_is_unauthorized(served: Served) -> None:
    stranger = served.bot("999:not-our-token")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    assert served.emulator.calls[-1].response == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_a_flood_fault_surfaces_as_retry_after_once(served: Served, bot: Bot) -> None:
    served.emulator.add_user(USER)
    served.emulator.fail_next("sendMessage", error_code=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "hi")
    assert caught.value.retry_after == 7
    assert (await bot.send_message(USER, "hi")).text == "hi"


async def test_a_user_who_blocked_the_bot_cannot_be_sent_to_until_unblocking(served: Served, bot: Bot) -> None:
    served.emulator.add_user(USER)
    kept = await bot.send_message(USER, "before")
    served.emulator.block_bot(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.edit_message_text("edited", chat_id=USER, message_id=kept.message_id)
    served.emulator.block_bot(USER, blocked=False)
    assert (await bot.send_message(USER, "hi again")).text == "hi again"
    assert [m.text for m in served.emulator.chat_messages(USER)] == ["before", "hi again"]


async def test_a_user_can_send_formatted_text(served: Served, bot: Bot) -> None:
    got: list[str] = []
    router = Router()

    @router.message()
    async def record(message: AiogramMessage) -> None:
        got.append(message.html_text)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    served.emulator.send_text(USER, "Big sale /now", entities=[MessageEntity(type="bold", offset=0, length=8)])
    [update] = await bot.get_updates(timeout=0)
    await dispatcher.feed_update(bot, update)
    assert got == ["<b>Big sale</b> /now"]  # the /command's own entity is there too, and changes no markup


async def test_commands_are_kept_per_scope_and_language(bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Open the shop")])
    await bot.set_my_commands(
        [BotCommand(command="start", description="Открыть магазин")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="ru",
    )
    assert [c.description for c in await bot.get_my_commands()] == ["Open the shop"]
    ru_private = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    assert [c.description for c in ru_private] == ["Открыть магазин"]
    assert await bot.get_my_commands(language_code="ru") == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start!", description="x")])


async def test_a_webhook_receives_updates_with_the_secret_and_blocks_polling(served: Served, bot: Bot) -> None:
    deliveries: list[tuple[str | None, dict]] = []
    failures_left = [1]  # the first delivery fails, to see Telegram-style retry

    async def receive(request: Request) -> Response:
        if failures_left[0]:
            failures_left[0] -= 1
            return Response(status_code=500)
        deliveries.append((request.headers.get("x-telegram-bot-api-secret-token"), await request.json()))
        return JSONResponse({})

    receiver = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    async with anyio.create_task_group() as group:
        port = await group.start(
            lambda task_status: serve_asgi(receiver, host="127.0.0.1", port=0, task_status=task_status)
        )
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret-Token_1")
        update = served.emulator.send_text(USER, "/start")
        with anyio.fail_after(3):
            while not deliveries:
                await anyio.sleep(0.02)
        group.cancel_scope.cancel()
    [(secret, body)] = deliveries
    assert (secret, body["update_id"], body["message"]["text"]) == ("s3cret-Token_1", update.update_id, "/start")
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0 and info.last_error_message is not None
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates() == []


async def test_raw_http_json_bodies_query_strings_and_unknown_methods(served: Served) -> None:
    served.emulator.add_user(USER)
    base = f"{served.base_url}/bot{TOKEN}"
    async with httpx.AsyncClient(trust_env=False) as client:
        sent = (await client.post(f"{base}/sendMessage", json={"chat_id": USER, "text": "json"})).json()
        queried = (await client.get(f"{base}/sendmessage", params={"chat_id": USER, "text": "query"})).json()
        missing = await client.post(f"{base}/noSuchMethod")
    assert sent["ok"] and sent["result"]["text"] == "json" and sent["result"]["from"]["id"] == 123456
    assert queried["result"]["message_id"] == sent["result"]["message_id"] + 1
    assert missing.status_code == 404
    assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_wait_for_call_hands_out_each_call_once_and_explains_a_timeout(served: Served, bot: Bot) -> None:
    await bot.get_me()
    await bot.get_me()
    first = await served.emulator.wait_for_call("getMe")
    second = await served.emulator.wait_for_call("getme")
    assert first is not second and first.time <= second.time
    with pytest.raises(CallNotMade, match=r"no new getMe call within 0.1 s(.|\n)*getMe \{\} -> ok"):
        await served.emulator.wait_for_call("getMe", timeout=0.1)


async def test_stopping_the_emulator_answers_a_parked_poll_at_once() -> None:
    emulator = TelegramEmulator(token=TOKEN)
    results: list[list] = []
    async with anyio.create_task_group() as group:
        server_scope = anyio.CancelScope()

        async def run_emulator(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            with server_scope:
                await serve_telegram_emulator(emulator, task_status=task_status)

        bot = Served(emulator, f"http://127.0.0.1:{await group.start(run_emulator)}").bot()
        try:

            async def poll() -> None:
                results.append(await bot.get_updates(timeout=30))

            group.start_soon(poll)
            await anyio.sleep(0.2)
            with anyio.fail_after(1):
                server_scope.cancel()
                while not results:
                    await anyio.sleep(0.01)
        finally:
            await bot.session.close()
    assert results == [[]]


async def test_allowed_updates_filters_updates_created_afterwards(served: Served, bot: Bot) -> None:
    assert await bot.get_updates(allowed_updates=["callback_query"]) == []
    served.emulator.send_text(USER, "ignored while only callback queries are allowed")
    sent = await bot.send_message(
        USER,
        "menu",
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Open", callback_data="open")]]),
    )
    served.emulator.press_button(USER, sent.message_id, "open")
    assert [u.event_type for u in await bot.get_updates()] == ["callback_query"]
