"""The configuration an operator writes: defaults, environment overrides, secrets, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopbot.config import load_config, serve_problems
from shopbot.config.secret import Secret, secret_values
from shopbot.config.show import render_config
from shopbot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shopbot.toml"
    path.write_text(text)
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def test_shipped_file_is_valid_and_documents_every_key() -> None:
    config = load_config(ROOT / "shopbot.toml", {})
    assert config.web.port == 8080
    assert config.database.url == Secret("")
    assert config.database.embedded_dir == "./var/postgres"
    rendered_keys = {line.split(" = ")[0] for line in render_config(config).splitlines() if " = " in line}
    shipped = (ROOT / "shopbot.toml").read_text()
    for key in rendered_keys:
        assert f"\n{key} = " in shipped, f"shopbot.toml does not document {key}"


def test_the_printed_configuration_is_itself_a_valid_configuration(tmp_path: Path) -> None:
    config = load_config(ROOT / "shopbot.toml", {"SHOPBOT_TELEGRAM__ADMIN_IDS": "1,2"})
    printed = write(tmp_path, render_config(config))
    assert load_config(printed, {}) == config


def test_empty_file_gives_safe_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {})
    assert config.web.host == "127.0.0.1"
    assert config.telegram.mode == "polling"
    assert config.shutdown.grace_seconds == 10.0


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[web]\nport = 9000\n")
    config = load_config(path, {"SHOPBOT_WEB__PORT": "9100", "SHOPBOT_TELEGRAM__TOKEN": "123:abc"})
    assert config.web.port == 9100
    assert config.telegram.token.reveal() == "123:abc"


@pytest.mark.parametrize("value", ["[1, 2, 3]", "1,2, 3", " 1 , 2,3 ,"])
def test_lists_accept_json_or_commas(tmp_path: Path, value: str) -> None:
    config = load_config(write(tmp_path, ""), {"SHOPBOT_TELEGRAM__ADMIN_IDS": value})
    assert config.telegram.admin_ids == (1, 2, 3)


def test_legacy_names_still_work(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, ""),
        {
            "TELEGRAM_TOKEN": "1:legacy",
            "DATABASE_URL": "postgresql://db/shop",
            "REDIS_URL": "redis://r:6379/0",
            "MERCHANT_UUID": "m-1",
            "API_KEY": "k",
            "FRAGMENT_SEED_PHRASE": "word " * 24,
            "FRAGMENT_COOKIES": "stel_ssid=1",
            "LOG_LEVEL": "DEBUG",
            "RATE_LIMIT_MESSAGES_PER_MINUTE": "12",
            "CACHE_TTL_USER": "60",
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "9",
        },
    )
    assert config.telegram.token.reveal() == "1:legacy"
    assert config.database.url.reveal() == "postgresql://db/shop"
    assert config.heleket.merchant_uuid == "m-1"
    assert config.log.level == "DEBUG"
    assert config.rate_limit.messages_per_minute == 12
    assert config.cache.user_ttl == 60
    assert config.circuit_breaker.failure_threshold == 9


def test_new_name_wins_over_legacy_name(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {"TELEGRAM_TOKEN": "1:old", "SHOPBOT_TELEGRAM__TOKEN": "1:new"})
    assert config.telegram.token.reveal() == "1:new"


def test_every_bad_key_is_named_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nport = "eighty"\nhots = "x"\n[nosuch]\na = 1\n[log]\nlevel = "LOUD"\n')
    problems = problems_of(path, {"SHOPBOT_WEB__COLOUR": "red", "RATE_LIMIT_NOPE": "1"})
    joined = "\n".join(problems)
    for expected in (
        "web.port",
        "web.hots: unknown key",
        "nosuch: unknown section",
        "log.level",
        "SHOPBOT_WEB__COLOUR",
        "RATE_LIMIT_NOPE",
    ):
        assert expected in joined
    assert len(problems) == 6


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, ""), {"SHOPBOT_SHUTDOWN__GRACE_SECONDS": "soon"})
    assert problems == ["shutdown.grace_seconds: Expected `float`, got `str` (value 'soon')"]


def test_out_of_range_value_is_named(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "[web]\nport = 70000\n"))
    assert problems[0].startswith("web.port: Expected `int` <= 65535")


def test_malformed_and_missing_files_are_one_line(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "[web\nport = 1"))
    assert "not valid TOML" in problem and "\n" not in problem
    [problem] = problems_of(tmp_path / "absent.toml")
    assert "absent.toml: no such file" in problem


def test_secrets_come_from_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("42:from-file\n")
    config = load_config(write(tmp_path, f'[telegram]\ntoken = "inline"\ntoken_file = "{token_file}"\n'), {})
    assert config.telegram.token.reveal() == "42:from-file"


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, '[fragment]\nseed_phrase_file = "/no/such/seed"\n'))
    assert problems == ["fragment.seed_phrase_file: cannot read '/no/such/seed': No such file or directory"]


def test_secrets_never_show(tmp_path: Path) -> None:
    secrets = {
        "SHOPBOT_TELEGRAM__TOKEN": "123456:SECRET-TOKEN",
        "SHOPBOT_HELEKET__API_KEY": "HELEKET-KEY-XYZ",
        "SHOPBOT_FRAGMENT__SEED_PHRASE": "abandon ability able",
        "SHOPBOT_FRAGMENT__COOKIES": "stel_token=COOKIE",
        "SHOPBOT_API__JWT_SECRET": "JWT-SECRET-123",
        "SHOPBOT_DATABASE__URL": "postgresql://u:PASSWORD@h/db",
    }
    config = load_config(write(tmp_path, ""), secrets)
    shown = render_config(config) + repr(config)
    for value in secrets.values():
        assert value not in shown
    assert 'token = "********"' in render_config(config)
    assert sorted(secret_values(config)) == sorted(secrets.values())


def test_cross_key_rules(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, '[database]\npool_min = 20\n[shop]\nmin_topup = "-1"\n'))
    assert any(p.startswith("database.pool_min") for p in problems)
    assert any(p.startswith("shop.min_topup: must be a positive amount") for p in problems)


def test_webhook_mode_needs_a_public_url_and_a_telegram_style_secret(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[telegram]\ntoken = "1:a"\nmode = "webhook"\nwebhook_secret = "has spaces"\n'), {}
    )
    problems = serve_problems(config)
    assert [p.split(":")[0] for p in problems] == ["web.public_url", "telegram.webhook_secret"]
    good = load_config(
        write(
            tmp_path,
            '[telegram]\ntoken = "1:a"\nmode = "webhook"\nwebhook_secret = "s3cr_et-1"\n'
            '[web]\npublic_url = "https://shop.example.com"\n',
        ),
        {},
    )
    assert serve_problems(good) == []


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), {})
    with pytest.raises(AttributeError):
        config.web.port = 1  # type: ignore[misc]
