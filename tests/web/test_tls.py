"""HTTPS served by shopbot itself (`[web] tls_cert`, `tls_key`) for a host without a reverse proxy."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from shopbot.config.schema import WebConfig
from shopbot.errors import ConfigError
from shopbot.web.asgi import serve_asgi
from tests.ops.serve_process import run_cli
from tests.ops.test_cli import assert_one_clear_line
from tests.shop_harness import free_port, running_shop

TOKEN = "987654:AAH-do-not-print-me"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the system's openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command (Debian: apt-get install openssl)"
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


async def test_the_shop_serves_https_with_the_configured_certificate(
    database_url: str, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    port = free_port()
    web = WebConfig(host="127.0.0.1", port=port, tls_cert=str(cert), tls_key=str(key))
    trusted = ssl.create_default_context(cafile=str(cert))
    async with running_shop(database_url, web=web) as shop:
        async with httpx.AsyncClient(verify=trusted, trust_env=False) as client:
            response = await client.get(f"https://127.0.0.1:{port}/health")
            assert response.status_code == 200
            # /metrics is on its own private listener, not on the public HTTPS port.
            assert (await client.get(f"https://127.0.0.1:{port}/metrics")).status_code == 404
            assert "shopbot_ready 1.0" in await shop.scrape()
        # Plain HTTP on the TLS port gets no page.
        async with httpx.AsyncClient(trust_env=False) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/health")


def test_a_certificate_without_its_key_is_a_config_error(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text(f'[web]\ntls_cert = "{certificate[0]}"\n')
    result = run_cli("--config", str(config), "config", "check")
    assert_one_clear_line(result, "web.tls_cert, web.tls_key: set both")


def test_a_missing_certificate_stops_serve_with_one_line(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text(
        f'[telegram]\ntoken = "{TOKEN}"\n[web]\ntls_cert = "{tmp_path / "nope.pem"}"\ntls_key = "{certificate[1]}"\n'
    )
    result = run_cli("--config", str(config), "serve")
    assert_one_clear_line(result, "web.tls_cert: cannot read", "nope.pem", "No such file")


def test_files_that_are_no_certificate_and_key_stop_serve_with_one_line(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    config = tmp_path / "shopbot.toml"
    # The key of another certificate is as wrong as garbage.
    other_key = tmp_path / "other.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(other_key)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for cert, key in ((garbage, certificate[1]), (certificate[0], other_key)):
        config.write_text(f'[telegram]\ntoken = "{TOKEN}"\n[web]\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
        result = run_cli("--config", str(config), "serve")
        assert_one_clear_line(result, "not a PEM certificate and its unencrypted private key")


async def test_serve_asgi_refuses_a_bad_certificate_before_binding(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ConfigError, match=r"web\.tls_key: cannot read"):
        await serve_asgi(
            None,
            host="127.0.0.1",
            port=port,
            tls_cert=__file__,  # type: ignore[arg-type]
            tls_key=str(tmp_path / "missing.pem"),
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # never bound, so free
