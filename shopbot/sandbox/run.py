"""`shopbot sandbox`: the real shop, wired through its ordinary config keys to local emulators.

Nothing here changes how the shop runs: `run_shop` is the same coroutine `shopbot serve` runs;
only the configuration differs: an embedded PostgreSQL of the sandbox's own, a generated bot token,
Heleket merchant and key, a throwaway wallet seed, and `[telegram] api_base`, `[heleket] base_url`
and `[fragment] base_url` pointing at the Telegram, Heleket and Fragment emulators on 127.0.0.1.
"""

from __future__ import annotations

import logging
import secrets
import socket
import uuid
from decimal import Decimal
from functools import partial
from pathlib import Path

import anyio
import asyncpg
import msgspec
from anyio.abc import TaskStatus

from shopbot.app.serve import RunningShop, run_shop, watch_signals
from shopbot.config.schema import Config, WebConfig
from shopbot.config.secret import Secret
from shopbot.db.queries import queries
from shopbot.lifecycle import Lifecycle
from shopbot.sandbox.chat import UNKNOWN_USERNAME, ChatPage
from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.heleket import HeleketEmulator, serve_heleket_emulator
from shopbot.sandbox.telegram import TelegramEmulator, serve_telegram_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of
from shopbot.web.asgi import serve_asgi

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
SANDBOX_WALLET_TON = 1000


class SandboxUrls(msgspec.Struct, frozen=True):
    page: str  # the web chat to open (it forwards every other path to the shop)
    shop: str
    telegram: str
    heleket: str
    fragment: str


class Emulators(msgspec.Struct, frozen=True):
    telegram: TelegramEmulator
    heleket: HeleketEmulator
    fragment: FragmentEmulator
    token: str
    merchant: str
    api_key: str
    seed: str


def make_emulators(landing_delay: float = 0.0) -> Emulators:
    """The three services with throwaway credentials; every username but @nobody_here exists on the emulated
    Fragment (that one shows how the shop answers a name nobody has), whose chain lands each payment
    `landing_delay` seconds after accepting it."""
    token = f"{secrets.randbelow(9 * 10**9) + 10**9}:sandbox-{secrets.token_urlsafe(24)}"
    merchant, api_key = str(uuid.uuid4()), secrets.token_urlsafe(32)
    fragment = FragmentEmulator(any_user=True, landing_delay=landing_delay)
    fragment.add_unknown_user(UNKNOWN_USERNAME)
    return Emulators(
        TelegramEmulator(token=token),
        HeleketEmulator(merchant_uuid=merchant, api_key=api_key),
        fragment,
        token,
        merchant,
        api_key,
        " ".join(throwaway_mnemonic()),
    )


def sandbox_config(
    base: Config, emulators: Emulators, *, ports: dict[str, int], data_dir: Path, host: str, port: int
) -> Config:
    """The operator's defaults with the sandbox's endpoints and throwaway credentials, through the
    ordinary config keys: the shop runs exactly as `shopbot serve` runs it."""
    local = {name: f"http://{LOOPBACK}:{value}" for name, value in ports.items()}
    replace = msgspec.structs.replace
    return replace(
        base,
        telegram=replace(base.telegram, token=Secret(emulators.token), api_base=local["telegram"], mode="polling"),
        database=replace(base.database, url=Secret(""), embedded_dir=str(data_dir / "postgres")),
        web=WebConfig(host=host, port=port, public_url=f"http://{LOOPBACK}:{port}"),
        # A free port, so the sandbox never clashes with a shop running on this host (the shop logs where).
        metrics=replace(base.metrics, port=0),
        heleket=replace(
            base.heleket,
            base_url=local["heleket"],
            merchant_uuid=emulators.merchant,
            api_key=Secret(emulators.api_key),
            allowed_ips=(),
            poll_seconds=30.0,
        ),
        fragment=replace(
            base.fragment,
            base_url=local["fragment"],
            seed_phrase=Secret(emulators.seed),
            kyc=False,
            max_ton_per_order=50.0,
            low_balance_ton=Decimal("1"),
        ),
    )


def free_port(host: str) -> int:
    """A port for the shop chosen up front: Heleket's webhooks need its address before it starts."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def add_sample_promo_codes(pool: asyncpg.Pool) -> None:
    """The sample codes, once (a name already taken is left as it is, so a restarted sandbox keeps its uses)."""
    await queries.promo.create_code(pool, "SANDBOX", "credit", Decimal("1.00"), None, None, 1000, 1, None, None)
    await queries.promo.create_code(
        pool, "SAVE10", "discount", None, Decimal("10"), Decimal("1.00"), 1000, 1, None, None
    )


async def run_sandbox(
    *,
    data_dir: Path,
    host: str = LOOPBACK,
    port: int = 8080,
    base: Config | None = None,
    lifecycle: Lifecycle | None = None,
    landing_delay: float = 0.0,
    task_status: TaskStatus[SandboxUrls] = anyio.TASK_STATUS_IGNORED,
) -> int:
    """Run the emulators and the shop until stopped; return the exit code. `landing_delay`: seconds the emulated
    chain takes to land each payment (queued orders are then paid in batches, as on TON)."""
    lifecycle = lifecycle or Lifecycle()
    emulators = make_emulators(landing_delay)
    # The web chat takes the operator's host and port; the shop moves to a free loopback port.
    page_host, page_port = host, port
    host, port = LOOPBACK, free_port(LOOPBACK)
    shop_done = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(watch_signals, lifecycle, group.cancel_scope, name="signals")
        ports = {
            "telegram": await group.start(partial(serve_telegram_emulator, emulators.telegram, host=LOOPBACK)),
            "heleket": await group.start(partial(serve_heleket_emulator, emulators.heleket, host=LOOPBACK)),
            "fragment": await group.start(partial(serve_fragment_emulator, emulators.fragment, host=LOOPBACK)),
        }
        emulators.fragment.fund(wallet_address_of(emulators.seed, "v4r2"), SANDBOX_WALLET_TON * 10**9)
        config = sandbox_config(base or Config(), emulators, ports=ports, data_dir=data_dir, host=host, port=port)

        async def shop(*, task_status: TaskStatus[RunningShop]) -> None:
            try:
                await run_shop(config, lifecycle, task_status=task_status)
            finally:
                shop_done.set()

        running = await group.start(shop)
        await add_sample_promo_codes(running.pool)
        shop_url = f"http://{host}:{running.web_port}"
        chat = ChatPage(
            telegram=emulators.telegram,
            heleket=emulators.heleket,
            fragment=emulators.fragment,
            shop=running,
            shop_url=shop_url,
        )
        page_port = await group.start(
            partial(serve_asgi, chat.app, host=page_host, port=page_port, graceful_seconds=1.0), name="sandbox web chat"
        )
        task_status.started(
            SandboxUrls(
                page=f"http://{page_host}:{page_port}",
                shop=shop_url,
                **{name: f"http://{LOOPBACK}:{value}" for name, value in ports.items()},
            )
        )
        # The shop drains first (within its own grace period); the emulators go once it has returned.
        await shop_done.wait()
        group.cancel_scope.cancel()
    return lifecycle.exit_code
