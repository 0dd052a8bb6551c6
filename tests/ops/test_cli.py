"""The command line an operator uses: every mistake ends in one clear line and a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.ops.serve_process import run_cli

SECRET_TOKEN = "987654:AAH-do-not-print-me"


def assert_one_clear_line(result: object, *expected: str) -> None:
    assert result.returncode != 0  # type: ignore[attr-defined]
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("shopbot: error: ")
    for text in expected:
        assert text in lines[0], lines[0]


def test_version_and_help_list_the_commands() -> None:
    assert run_cli("version").stdout.startswith("shopbot ")
    help_text = run_cli("--help").stdout
    for command in ("serve", "migrate", "config", "version"):
        assert command in help_text


def test_config_check_prints_masked_config_and_accepts_a_good_one(tmp_path: Path) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text(f'[telegram]\ntoken = "{SECRET_TOKEN}"\n')
    result = run_cli("--config", str(config), "config", "check")
    assert result.returncode == 0, result.stderr
    assert 'token = "********"' in result.stdout
    assert SECRET_TOKEN not in result.stdout + result.stderr


def test_config_check_names_each_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text('[web]\nport = "x"\ncolour = 1\n')
    result = run_cli("--config", str(config), "config", "check", SHOPBOT_LOG__LEVEL="LOUD")
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert [e.split(": ")[2] for e in errors] == ["web.port", "web.colour", "log.level"]
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    assert_one_clear_line(run_cli("--config", str(tmp_path / "nope.toml"), "serve"), "nope.toml: no such file")


def test_malformed_config_file_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text("[telegram\ntoken = ")
    assert_one_clear_line(run_cli("--config", str(config), "serve"), "not valid TOML")


def test_serve_without_a_token_says_so(tmp_path: Path) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text("")
    assert_one_clear_line(run_cli("--config", str(config), "serve"), "telegram.token: required")


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text(f'[telegram]\ntoken = "{SECRET_TOKEN}"\n[database]\nconnect_timeout = 3\n')
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli(
        "--config", str(config), "serve", SHOPBOT_DATABASE__URL=f"postgresql://shop:hunter2secret@127.0.0.1:{port}/shop"
    )
    assert_one_clear_line(result, f"database 127.0.0.1:{port}/shop is unavailable")
    assert "hunter2secret" not in result.stderr + result.stdout


async def test_port_in_use_is_one_line(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "shopbot.toml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(f'[telegram]\ntoken = "{SECRET_TOKEN}"\n[web]\nport = {port}\n[log]\nlevel = "ERROR"\n')
        result = run_cli("--config", str(config), "serve", SHOPBOT_DATABASE__URL=database_url)
    assert_one_clear_line(result, f"port {port} on 127.0.0.1 is already in use")


async def test_migrate_applies_then_reports_up_to_date(tmp_path: Path, empty_database_url: str) -> None:
    config = tmp_path / "shopbot.toml"
    config.write_text('[log]\nlevel = "ERROR"\n')
    first = run_cli("--config", str(config), "migrate", SHOPBOT_DATABASE__URL=empty_database_url)
    assert first.returncode == 0, first.stderr
    assert "0001_users" in first.stdout
    second = run_cli("--config", str(config), "migrate", SHOPBOT_DATABASE__URL=empty_database_url)
    assert second.stdout.strip() == "applied 0 migration(s); the database is up to date"
