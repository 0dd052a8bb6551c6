"""The Heleket emulator as a process of its own, for the webhook scenario: the shop confirms every webhook with
`payment/info` before it credits, and answering those calls must not take the load generator's event loop (nor
the shop's) away from what is measured.

At start it opens and pays every invoice listed in the --invoices file (a JSON list of [order_id, amount,
currency]) without HTTP, writes the uuid Heleket gave each one to the --uuids file ({order_id: uuid}), then serves
the API and prints `heleket ready on PORT`. Nothing sends webhooks from here (the invoices have no url_callback):
the bench sends them. On SIGTERM it prints one JSON line: how many answers it gave, by path and status.
`HeleketProcess` starts it and reads it from the bench's side; `set_info_latency` changes how long payment/info
takes from then on (a bench-only route, `POST /_bench/info-latency?seconds=S`, which Heleket does not have).

    python -m bench.heleket_server --invoices FILE --uuids FILE [--info-latency SECONDS]
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.common import HELEKET_KEY, MERCHANT, PYTHON
from bench.processes import Child
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator

INFO = "/v1/payment/info"
CONTROL = "/_bench/info-latency"
TALLY_SECONDS = 0.5
READY_SECONDS = 120  # opening and paying 40,000 invoices takes a few seconds on a busy core


class HeleketProcess(Child):
    """The bench's side: starts the process with the invoices to open and pay, and reads what it says."""

    def __init__(self, folder: Path, invoices: list[tuple[str, Decimal, str]], *, info_latency: float) -> None:
        stamp = time.monotonic_ns()
        self.port = 0
        listed, self.uuids_path = folder / f"heleket-invoices.{stamp}.json", folder / f"heleket-uuids.{stamp}.json"
        listed.write_text(json.dumps([[order_id, str(amount), currency] for order_id, amount, currency in invoices]))
        super().__init__(
            "heleket",
            [
                PYTHON,
                "-m",
                "bench.heleket_server",
                "--invoices",
                str(listed),
                "--uuids",
                str(self.uuids_path),
                "--info-latency",
                str(info_latency),
            ],
            folder,
        )

    async def wait_ready(self) -> tuple[int, dict[str, str]]:
        """Once it serves: its port, and the uuid Heleket gave each invoice, by order_id."""
        self.port = int((await self.wait_output("heleket ready on", READY_SECONDS)).rsplit(" ", 1)[1])
        return self.port, json.loads(self.uuids_path.read_text())

    async def set_info_latency(self, seconds: float) -> None:
        """payment/info answers after `seconds` from now on."""
        async with httpx.AsyncClient(trust_env=False) as http:
            answer = await http.post(f"http://127.0.0.1:{self.port}{CONTROL}", params={"seconds": seconds})
            answer.raise_for_status()

    async def answers(self) -> dict[str, int]:
        """After stop(): how many calls it answered, by "path status"."""
        line = await self.wait_output("heleket summary", 5)
        return dict(json.loads(line.split("heleket summary ", 1)[1])["answers"])


def with_control(emulator: HeleketEmulator, app: ASGIApp) -> ASGIApp:
    """The emulator's app, plus the bench's route that sets payment/info's latency."""

    async def control(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CONTROL:
            seconds = float(Request(scope, receive).query_params["seconds"])
            emulator.set_latency(INFO, seconds)
            await JSONResponse({"info_latency": seconds})(scope, receive, send)
            return
        await app(scope, receive, send)

    return control


def open_and_pay(emulator: HeleketEmulator, invoices: list[list[str]]) -> dict[str, str]:
    """Each invoice opened and paid in full (status `paid`, final), as payment/info will then report it."""
    uuids = {}
    for order_id, amount, currency in invoices:
        invoice = emulator.open_invoice(order_id, Decimal(amount), currency=currency)
        emulator.pay(invoice.uuid)
        uuids[order_id] = invoice.uuid
    return uuids


def tally(emulator: HeleketEmulator, answers: Counter[str]) -> None:
    """Count the calls answered since last time and forget them, so tens of thousands cost no memory."""
    calls, emulator.calls = emulator.calls, []
    answers.update(f"{call.path} {call.status}" for call in calls)


async def keep_tallying(emulator: HeleketEmulator, answers: Counter[str]) -> None:
    while True:
        await anyio.sleep(TALLY_SECONDS)
        tally(emulator, answers)


async def main(invoices: Path, uuids: Path, info_latency: float) -> None:
    emulator = HeleketEmulator(merchant_uuid=MERCHANT, api_key=HELEKET_KEY)
    emulator.set_latency(INFO, info_latency)
    emulator.app = with_control(emulator, emulator.app)
    uuids.write_text(json.dumps(open_and_pay(emulator, json.loads(invoices.read_text()))))
    answers: Counter[str] = Counter()
    async with anyio.create_task_group() as group:
        port = await group.start(serve_heleket_emulator, emulator)
        group.start_soon(keep_tallying, emulator, answers)
        print(f"heleket ready on {port}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        group.cancel_scope.cancel()
    tally(emulator, answers)
    print("heleket summary " + json.dumps({"answers": dict(answers)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", required=True, type=Path, help="JSON list of [order_id, amount, currency]")
    parser.add_argument("--uuids", required=True, type=Path, help="where to write {order_id: uuid}")
    parser.add_argument("--info-latency", type=float, default=0.0, help="seconds before each payment/info answer")
    args = parser.parse_args()
    anyio.run(main, args.invoices, args.uuids, args.info_latency, backend="asyncio")
