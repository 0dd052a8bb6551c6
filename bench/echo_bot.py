"""The updates ceiling: a bare aiogram bot that echoes each message and answers each button press, fed by the
shop's own poller and Bot session, as a process of its own like `shopbot serve`. No database, no middlewares,
no texts: whatever the shop spends beyond this is the shop's own work.

With --shop-calls it makes the Bot API calls the shop makes instead: a typed message is answered with a
message carrying the shop's main-menu keyboard, a button press edits the message it came from (the same
keyboard) and is then answered; that is 8 calls for the bench's walk of 5 updates, as the shop's, where the
plain echo bot makes 5. Still no database, no middlewares, no texts: the floor that the Bot API calls alone set.

    python -m bench.echo_bot --api-base http://127.0.0.1:PORT --token TOKEN [--shop-calls]
"""

from __future__ import annotations

import argparse
import signal

import anyio
from aiogram import Dispatcher
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from shopbot.bot.poller import Poller
from shopbot.bot.session import open_bot
from shopbot.bot.updates import UpdateHandler
from shopbot.config.schema import TelegramConfig
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts, Translator
from shopbot.metrics import Metrics


async def on_message_echo(message: Message) -> None:
    await message.answer(message.text or "?")


async def on_press_answer(query: CallbackQuery) -> None:
    await query.answer()


def shop_calls(dispatcher: Dispatcher, menu: InlineKeyboardMarkup) -> None:
    """Handlers making the shop's Bot API calls: a screen sent or edited with a keyboard, a press answered."""

    async def on_message_screen(message: Message) -> None:
        await message.answer(f"You wrote {message.text}", reply_markup=menu)

    async def on_press_edit_and_answer(query: CallbackQuery) -> None:
        if isinstance(query.message, Message):
            await query.message.edit_text(f"You pressed {query.data}", reply_markup=menu)
        await query.answer()

    dispatcher.message.register(on_message_screen)
    dispatcher.callback_query.register(on_press_edit_and_answer)


async def main(api_base: str, token: str, poll_timeout: int, with_shop_calls: bool) -> None:
    lifecycle = Lifecycle()
    dispatcher = Dispatcher()
    texts = Texts()
    if with_shop_calls:
        # Imported here: the plain echo bot is also the footprint scenario's ceiling, and must not grow.
        from shopbot.bot.keyboards import main_menu

        shop_calls(dispatcher, main_menu(Translator(texts, "en")))
    else:
        dispatcher.message.register(on_message_echo)
        dispatcher.callback_query.register(on_press_answer)
    config = TelegramConfig(token=Secret(token), api_base=api_base, poll_timeout=poll_timeout)
    async with open_bot(config) as bot, anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    lifecycle.request_stop("signal")
                    return

        group.start_soon(watch_signals)
        poller = Poller(
            UpdateHandler(bot, dispatcher, Metrics()), lifecycle, texts, poll_timeout=poll_timeout, max_concurrent=50
        )
        await group.start(poller.run)
        print("echo bot ready", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--poll-timeout", type=int, default=10)
    parser.add_argument("--shop-calls", action="store_true", help="make the shop's Bot API calls, not an echo")
    args = parser.parse_args()
    anyio.run(main, args.api_base, args.token, args.poll_timeout, args.shop_calls, backend="asyncio")
