"""The Telegram emulator as a process of its own, for scenarios where Telegram is only on the receiving end (the
top-up notices of the webhook scenario): its work stays out of the load generator's event loop. On SIGTERM it
prints one JSON line: the Bot API methods it answered, and any failures.

    python -m bench.telegram_sink --token TOKEN --users FIRST:COUNT
"""

from __future__ import annotations

import argparse
import json
import signal

import anyio

from bench.telegram_load import LoadTelegram
from shopbot.sandbox.telegram import serve_telegram_emulator


async def main(token: str, first: int, count: int) -> None:
    telegram = LoadTelegram(token)
    for user in range(first, first + count):
        telegram.add_user(user, first_name=f"Payer{user}")
    async with anyio.create_task_group() as group:
        port = await group.start(serve_telegram_emulator, telegram)
        print(f"sink ready on {port}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        group.cancel_scope.cancel()
    print(
        "sink summary " + json.dumps({"methods": dict(telegram.methods), "failures": dict(telegram.failures)}),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--users", required=True, help="FIRST:COUNT")
    args = parser.parse_args()
    first, count = (int(part) for part in args.users.split(":"))
    anyio.run(main, args.token, first, count, backend="asyncio")
