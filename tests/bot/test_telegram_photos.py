"""sendPhoto in the Bot API emulator, driven by the real aiogram client's multipart upload, and the chart the
admin dashboard sends through it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import anyio
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from shopbot.bot.admin.chart import PNG_SIGNATURE, render_sales_chart
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator

TOKEN = "123456:TEST-emulator-token"
USER = 42


@pytest.fixture
async def served() -> AsyncIterator[tuple[TelegramEmulator, Bot]]:
    emulator = TelegramEmulator(token=TOKEN)
    emulator.add_user(USER)
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, emulator)
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}")))
        try:
            yield emulator, bot
        finally:
            await bot.session.close()
            group.cancel_scope.cancel()


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk of a PNG, each CRC checked: what a viewer reads before it draws anything."""
    assert png.startswith(PNG_SIGNATURE)
    chunks, index = [], len(PNG_SIGNATURE)
    while index < len(png):
        (length,) = struct.unpack(">I", png[index : index + 4])
        kind, data = png[index + 4 : index + 8], png[index + 8 : index + 8 + length]
        (crc,) = struct.unpack(">I", png[index + 8 + length : index + 12 + length])
        assert zlib.crc32(kind + data) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        index += 12 + length
    return chunks


async def sales_chart() -> bytes:
    today = date(2026, 11, 30)
    days = [(today - timedelta(days=n), Decimal(n % 7), Decimal(n % 7) / 4) for n in range(29, -1, -1)]
    return await render_sales_chart(days, "USD", "Sales per day")


async def test_the_sales_chart_is_a_complete_png() -> None:
    png = await sales_chart()
    chunks = png_chunks(png)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (800, 400)
    pixels = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * 4)  # RGBA rows, each with its filter byte


async def test_a_photo_upload_is_stored_and_shown_with_its_caption(served: tuple[TelegramEmulator, Bot]) -> None:
    emulator, bot = served
    png = await sales_chart()
    sent = await bot.send_photo(
        USER, BufferedInputFile(png, filename="sales.png"), caption="<b>Sales</b>", parse_mode="HTML"
    )
    assert sent.photo and (sent.photo[-1].width, sent.photo[-1].height) == (800, 400)
    assert sent.caption == "Sales" and sent.caption_entities and sent.caption_entities[0].type == "bold"
    [shown] = [m for m in emulator.chat_messages(USER) if m.photo]
    assert emulator.photo(shown) == png
    again = await bot.send_photo(USER, sent.photo[-1].file_id)  # a file_id sends the same photo again
    assert again.photo and again.photo[-1].file_id == sent.photo[-1].file_id and again.caption is None


async def test_what_telegram_refuses_as_a_photo_is_refused(served: tuple[TelegramEmulator, Bot]) -> None:
    emulator, bot = served
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER, BufferedInputFile(b"not an image", filename="x.png"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(USER, "no-such-file-id")
    sent = await bot.send_photo(USER, BufferedInputFile(await sales_chart(), filename="sales.png"))
    with pytest.raises(TelegramBadRequest, match="no text in the message to edit"):
        await bot.edit_message_text("new", chat_id=USER, message_id=sent.message_id)
    assert len([m for m in emulator.chat_messages(USER) if m.photo]) == 1
