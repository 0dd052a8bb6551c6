"""The webhook ceilings, each a process of its own on the shop's own HTTP stack (Starlette on hypercorn through
`serve_asgi`), so only the work behind the route differs from `shopbot serve`:

- static: read the body, answer 200 with a constant body;
- credit: verify the same Heleket signature and credit a balance with one SQL statement (an INSERT ... ON
  CONFLICT DO NOTHING feeding an UPDATE): no ledger, no event record, no notification. The least work any
  correct implementation must do.

    python -m bench.ceiling_web static|credit --port PORT [--dsn DSN --key KEY]
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import anyio
import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopbot.payments.signing import WebhookRejected, verify_webhook
from shopbot.web.asgi import serve_asgi

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_invoices (order_id TEXT PRIMARY KEY, user_id BIGINT NOT NULL,
                                           amount NUMERIC(24, 8) NOT NULL);
CREATE TABLE IF NOT EXISTS bench_balances (user_id BIGINT PRIMARY KEY, balance NUMERIC(24, 8) NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bench_paid (order_id TEXT PRIMARY KEY, amount NUMERIC(24, 8) NOT NULL);
"""
# The one statement: the first paid webhook of an order inserts its row and credits the invoice's amount (when
# the webhook's amount matches it); a repeat inserts nothing, so nothing is credited twice.
CREDIT = """
WITH paid AS (
    INSERT INTO bench_paid (order_id, amount) VALUES ($1, $2::numeric) ON CONFLICT DO NOTHING
    RETURNING order_id, amount
)
UPDATE bench_balances b SET balance = b.balance + i.amount
FROM paid JOIN bench_invoices i ON i.order_id = paid.order_id AND i.amount = paid.amount
WHERE b.user_id = i.user_id
"""
OK = b'{"ok":true}'


def build_app(mode: str, pool: asyncpg.Pool | None, key: str) -> Starlette:
    async def static(request: Request) -> Response:
        await request.body()
        return Response(OK, media_type="application/json")

    async def credit(request: Request) -> Response:
        assert pool is not None
        try:
            payload: dict[str, Any] = verify_webhook(await request.body(), key)
        except WebhookRejected as rejected:
            return Response(rejected.reason.encode(), status_code=401)
        if payload.get("status") not in ("paid", "paid_over") or not payload.get("is_final"):
            return Response(OK, media_type="application/json")
        await pool.execute(CREDIT, payload["order_id"], payload["amount"])
        return Response(OK, media_type="application/json")

    return Starlette(routes=[Route("/webhook/heleket", static if mode == "static" else credit, methods=["POST"])])


async def main(mode: str, port: int, dsn: str, key: str) -> None:
    pool = None
    if mode == "credit":
        # The shop's pool size, so both have the same number of connections to PostgreSQL.
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        await pool.execute(SCHEMA)
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as group:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            group.start_soon(watch_signals)
            bound = await group.start(
                lambda task_status: serve_asgi(
                    build_app(mode, pool, key),
                    host="127.0.0.1",
                    port=port,
                    shutdown_trigger=stop.wait,
                    graceful_seconds=2.0,
                    task_status=task_status,
                )
            )
            print(f"ceiling ready on {bound}", flush=True)
            await stop.wait()
    finally:
        if pool is not None:
            with anyio.move_on_after(5, shield=True):
                await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["static", "credit"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", default="")
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    anyio.run(main, args.mode, args.port, args.dsn, args.key, backend="asyncio")
