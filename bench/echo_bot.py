"""The updates ceiling: a bare aiogram bot that echoes each message and answers each button press, fed by the
shop's own poller and Bot session, as a process of its own like `shopbot serve`. No database, no middlewares,
no texts: whatever the shop spends beyond this is the shop's own work.

    python -m bench.echo_bot --api-base http://127.0.0.1:PORT --token TOKEN
"""

from __future__ import annotations

import argparse
import signal

import anyio
from aiogram import Dispatcher
from aiogram.types import CallbackQuery, Message

from shopbot.bot.poller import Poller
from shopbot.bot.session import open_bot
from shopbot.bot.updates import UpdateHandler
from shopbot.config.schema import TelegramConfig
from shopbot.config.secret import Secret
from shopbot.lifecycle import Lifecycle
from shopbot.locales import Texts
from shopbot.metrics import Metrics


async def on_message_echo(message: Message) -> None:
    await message.answer(message.text or "?")


async def on_press_answer(query: CallbackQuery) -> None:
    await query.answer()


async def main(api_base: str, token: str, poll_timeout: int) -> None:
    lifecycle = Lifecycle()
    dispatcher = Dispatcher()
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
            UpdateHandler(bot, dispatcher, Metrics()), lifecycle, Texts(), poll_timeout=poll_timeout, max_concurrent=50
        )
        await group.start(poller.run)
        print("echo bot ready", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--poll-timeout", type=int, default=10)
    args = parser.parse_args()
    anyio.run(main, args.api_base, args.token, args.poll_timeout, backend="asyncio")
