"""`shopbot sandbox`, the README's first command: the shop comes up with nothing configured."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from shopbot.sandbox.run import make_emulators
from tests.ops.serve_process import SHOPBOT, clean_env


async def test_sandbox_starts_with_nothing_configured_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*SHOPBOT, "sandbox", "--port", "0", "--data-dir", str(tmp_path / "sandbox")],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(90):
            line = await anyio.to_thread.run_sync(process.stdout.readline)
        assert line.startswith("shopbot sandbox is running at http://127.0.0.1:"), line
        shop_url = line.split()[5]
        async with httpx.AsyncClient() as http:
            detailed = await http.get(f"{shop_url}/health/detailed")
        assert detailed.status_code == 200, detailed.text
        body = detailed.json()
        assert body["checks"]["telegram"]["ok"] is True
        # Selling is on against the emulated Fragment, with a funded throwaway wallet.
        assert body["circuits"]["fragment"] == "closed"
        # The public port shows no money figures: the wallet's balance is only in /metrics, privately.
        assert "wallet_ton" not in body["facts"] and "1000" not in detailed.text
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(20):
            code = await anyio.to_thread.run_sync(process.wait)
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_sandbox_refuses_a_public_address_without_the_flag() -> None:
    result = subprocess.run(
        [*SHOPBOT, "sandbox", "--host", "0.0.0.0"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "shopbot: error: --host 0.0.0.0 would expose the sandbox beyond this machine; add --allow-remote to mean it"
    )


@pytest.mark.parametrize("delay", ["-1", "61", "nan"])
def test_sandbox_refuses_a_landing_delay_out_of_range(delay: str) -> None:
    result = subprocess.run(
        [*SHOPBOT, "sandbox", "--landing-delay", delay], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"shopbot: error: --landing-delay {delay}: give seconds from 0 to 60"


def test_the_sandbox_chain_lands_payments_after_the_delay_asked_for() -> None:
    assert make_emulators(2.5).fragment.landing_delay == 2.5
    assert make_emulators().fragment.landing_delay == 0.0
