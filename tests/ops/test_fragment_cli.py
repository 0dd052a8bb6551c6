"""The operator's Fragment commands: the pre-flight check and importing cookies."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio
import asyncpg

from shopbot.sandbox.fragment import FragmentEmulator, serve_fragment_emulator
from shopbot.sandbox.wallet_seed import throwaway_mnemonic, wallet_address_of
from tests.ops.serve_process import run_cli

TON = 10**9
COOKIES = "stel_ssid=ssid-SECRET-1; stel_dt=-180; stel_token=token-SECRET-2; stel_ton_token=ton-SECRET-3"


def config_file(folder: Path, fragment_port: int, seed: str, *, kyc: bool) -> Path:
    path = folder / "shopbot.toml"
    path.write_text(
        f'[fragment]\nbase_url = "http://127.0.0.1:{fragment_port}"\nseed_phrase = "{seed}"\n'
        f'kyc = {"true" if kyc else "false"}\nmax_ton_per_order = 10.0\nlow_balance_ton = "5"\n'
        f'request_timeout = 5.0\n[log]\nlevel = "ERROR"\n'
    )
    return path


async def check(folder: Path, database_url: str, fragment: FragmentEmulator, seed: str, *, kyc: bool):  # type: ignore[no-untyped-def]
    async with anyio.create_task_group() as group:
        port = await group.start(serve_fragment_emulator, fragment)
        config = config_file(folder, port, seed, kyc=kyc)
        result = await anyio.to_thread.run_sync(
            partial(run_cli, "--config", str(config), "fragment", "check", SHOPBOT_DATABASE__URL=database_url)
        )
        group.cancel_scope.cancel()
    return result


async def test_check_passes_for_a_funded_wallet(tmp_path: Path, database_url: str) -> None:
    fragment, seed = FragmentEmulator(), " ".join(throwaway_mnemonic())
    fragment.fund(wallet_address_of(seed, "v4r2"), 20 * TON)
    result = await check(tmp_path, database_url, fragment, seed, kyc=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok    wallet {wallet_address_of(seed, 'v4r2')} (v4r2)" in result.stdout
    assert "ok    service reachable; wallet uninit, balance 20.0000 TON" in result.stdout
    assert seed.split()[0] not in result.stdout + result.stderr


async def test_check_names_missing_cookies_and_a_low_wallet(tmp_path: Path, database_url: str) -> None:
    fragment, seed = FragmentEmulator(), " ".join(throwaway_mnemonic())
    fragment.fund(wallet_address_of(seed, "v4r2"), 1 * TON)
    result = await check(tmp_path, database_url, fragment, seed, kyc=True)
    assert result.returncode == 1
    assert "FAIL  Fragment cookies: none stored and none configured" in result.stdout
    assert "below the alert level of 5 TON" in result.stdout


async def test_check_says_when_the_service_is_unreachable(tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, 9, " ".join(throwaway_mnemonic()), kyc=False)  # nothing listens on port 9
    result = await anyio.to_thread.run_sync(
        partial(run_cli, "--config", str(config), "fragment", "check", SHOPBOT_DATABASE__URL=database_url)
    )
    assert result.returncode == 1
    assert "FAIL  the Fragment service at http://127.0.0.1:9 did not answer as expected" in result.stdout
    assert "Traceback" not in result.stderr


async def test_imported_cookies_are_stored_and_never_echoed(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text('[log]\nlevel = "ERROR"\n')
    exported = tmp_path / "cookies.txt"
    exported.write_text(COOKIES)
    result = run_cli(
        "--config", str(config), "fragment", "import-cookies", str(exported), SHOPBOT_DATABASE__URL=database_url
    )
    assert result.returncode == 0, result.stderr
    assert "stel_token" in result.stdout and "SECRET" not in result.stdout + result.stderr
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT source FROM fragment_cookies ORDER BY id DESC LIMIT 1") == "import"
    finally:
        await conn.close()
    exported.write_text("stel_ssid=only-SECRET-4")
    bad = run_cli(
        "--config", str(config), "fragment", "import-cookies", str(exported), SHOPBOT_DATABASE__URL=database_url
    )
    assert bad.returncode == 1 and "no stel_token" in bad.stderr and "SECRET" not in bad.stderr
    missing = run_cli(
        "--config",
        str(config),
        "fragment",
        "import-cookies",
        str(tmp_path / "nope.txt"),
        SHOPBOT_DATABASE__URL=database_url,
    )
    assert missing.returncode == 1 and missing.stderr.strip().endswith("cannot be read (No such file or directory)")
