"""Read `shopbot.toml`, apply the environment, and check every key.

Order matters: the file is read first, then `SHOPBOT_<SECTION>__<KEY>` variables and the legacy
names override it, then `*_file` keys are read into their secrets, and only then is every key
checked, so one run reports every bad key at once instead of the first.
"""

from __future__ import annotations

import ipaddress
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from shopbot.config.schema import PREMIUM_MONTHS, Config
from shopbot.config.secret import Secret, decode_hook
from shopbot.config.tls import tls_problems
from shopbot.errors import ConfigError

ENV_PREFIX = "SHOPBOT_"
CONFIG_ENV = "SHOPBOT_CONFIG"

# The seed project's variable names; they keep working so an operator's old .env still applies.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "TELEGRAM_TOKEN": ("telegram", "token"),
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
    "MERCHANT_UUID": ("heleket", "merchant_uuid"),
    "API_KEY": ("heleket", "api_key"),
    "FRAGMENT_SEED_PHRASE": ("fragment", "seed_phrase"),
    "FRAGMENT_COOKIES": ("fragment", "cookies"),
    "LOG_LEVEL": ("log", "level"),
}
# Legacy families: RATE_LIMIT_MESSAGES_PER_MINUTE -> rate_limit.messages_per_minute,
# CACHE_TTL_USER -> cache.user_ttl, CIRCUIT_BREAKER_TIMEOUT -> circuit_breaker.timeout.
LEGACY_FAMILIES: dict[str, tuple[str, str, str]] = {
    "RATE_LIMIT_": ("rate_limit", "", ""),
    "CACHE_TTL_": ("cache", "", "_ttl"),
    "CIRCUIT_BREAKER_": ("circuit_breaker", "", ""),
}


def section_types() -> dict[str, type[msgspec.Struct]]:
    """Each section name with its struct type."""
    return {f.name: f.type for f in msgspec.structs.fields(Config)}


def key_types(section: type[msgspec.Struct]) -> dict[str, Any]:
    """Each key of a section with its declared type."""
    return {f.name: f.type for f in msgspec.structs.fields(section)}


def default_path(environ: Mapping[str, str]) -> Path:
    """`$SHOPBOT_CONFIG`, else `shopbot.toml` in the working directory."""
    return Path(environ.get(CONFIG_ENV) or "shopbot.toml")


def read_file(path: Path) -> dict[str, Any]:
    """Parse the TOML file, turning every way it can fail into one clear line."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such file (create it from the shopbot.toml in the repository, or pass --config)"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: not a TOML table"])
    return raw


def is_sequence_type(type_: Any) -> bool:
    return typing.get_origin(type_) in (list, tuple)


def parse_env_value(value: str, type_: Any) -> Any:
    """Env values are strings; lists accept a JSON array or a comma-separated string."""
    if is_sequence_type(type_):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                return msgspec.json.decode(stripped)
            except msgspec.DecodeError:
                raise ValueError("not a valid JSON array") from None
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


def env_target(name: str) -> tuple[str, str] | None:
    """The (section, key) an environment variable sets, or None when it is not ours."""
    if name == CONFIG_ENV:
        return None
    if name.startswith(ENV_PREFIX):
        section, sep, key = name[len(ENV_PREFIX) :].partition("__")
        return (section.lower(), key.lower()) if sep else (section.lower(), "")
    if name in LEGACY_NAMES:
        return LEGACY_NAMES[name]
    for prefix, (section, key_prefix, key_suffix) in LEGACY_FAMILIES.items():
        if name.startswith(prefix):
            return section, key_prefix + name[len(prefix) :].lower() + key_suffix
    return None


def apply_environment(raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> None:
    """Override file values with the environment; a variable naming no key is a problem."""
    sections = section_types()
    # Legacy names first, so the explicit SHOPBOT_ form wins when both are set.
    for name in sorted(environ, key=lambda n: n.startswith(ENV_PREFIX)):
        target = env_target(name)
        if target is None:
            continue
        section, key = target
        struct = sections.get(section)
        types = key_types(struct) if struct else {}
        if key not in types:
            problems.append(f"{name}: names no configuration key ({section}.{key or '?'} does not exist)")
            continue
        try:
            value = parse_env_value(environ[name], types[key])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        table = raw.setdefault(section, {})
        if isinstance(table, dict):
            table[key] = value


def read_secret_files(raw: dict[str, Any], problems: list[str]) -> None:
    """Fill each secret from its `*_file` key; the file wins over an inline value."""
    for section, struct in section_types().items():
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        types = key_types(struct)
        for key, type_ in types.items():
            if type_ is not Secret:
                continue
            file_name = table.get(f"{key}_file")
            if not file_name or not isinstance(file_name, str):
                continue
            try:
                table[key] = Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"{section}.{key}_file: cannot read {file_name!r}: {exc.strerror}")


def check_keys(raw: dict[str, Any], problems: list[str]) -> None:
    """Name every unknown section or key and every value of the wrong type."""
    sections = section_types()
    for section, table in raw.items():
        struct = sections.get(section)
        if struct is None:
            problems.append(f"{section}: unknown section")
            continue
        if not isinstance(table, dict):
            problems.append(f"{section}: must be a table ([{section}])")
            continue
        types = key_types(struct)
        for key, value in table.items():
            if key not in types:
                problems.append(f"{section}.{key}: unknown key")
                continue
            try:
                msgspec.convert(value, types[key], strict=False, dec_hook=decode_hook)
            except msgspec.ValidationError as exc:
                shown = "" if types[key] is Secret else f" (value {value!r})"
                problems.append(f"{section}.{key}: {exc}{shown}")


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and check the configuration; raise `ConfigError` naming every bad key."""
    environ = os.environ if environ is None else environ
    raw = read_file(path or default_path(environ))
    problems: list[str] = []
    apply_environment(raw, environ, problems)
    read_secret_files(raw, problems)
    check_keys(raw, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = msgspec.convert(raw, Config, strict=False, dec_hook=decode_hook)
    except msgspec.ValidationError as exc:  # cross-key shapes check_keys cannot see
        raise ConfigError([str(exc)]) from None
    problems = check_consistency(config)
    if problems:
        raise ConfigError(problems)
    return config


def check_consistency(config: Config) -> list[str]:
    """Rules that involve more than one key."""
    problems = []
    if config.database.pool_min > config.database.pool_max:
        problems.append("database.pool_min: must not exceed database.pool_max")
    for key in ("min_topup", "max_topup"):
        value = getattr(config.shop, key)
        if not value.is_finite() or value <= 0:
            problems.append(f"shop.{key}: must be a positive amount")
    if not config.shop.star_price.is_finite() or config.shop.star_price <= 0:
        problems.append("shop.star_price: must be a positive amount")
    if set(config.shop.premium_prices) != set(PREMIUM_MONTHS):
        problems.append('shop.premium_prices: must give a price for exactly "3", "6" and "12" months')
    for months, price in config.shop.premium_prices.items():
        if not price.is_finite() or price <= 0:
            problems.append(f"shop.premium_prices.{months}: must be a positive amount")
    if any(not p.is_finite() or p <= 0 for p in config.shop.topup_presets):
        problems.append("shop.topup_presets: every preset must be a positive amount")
    if any(not config.shop.min_stars <= n <= config.shop.max_stars for n in config.shop.star_packages):
        problems.append("shop.star_packages: every package must be within shop.min_stars and shop.max_stars")
    if config.shop.min_stars > config.shop.max_stars:
        problems.append("shop.min_stars: must not exceed shop.max_stars")
    pricing = config.pricing
    for key in ("price_step", "premium_step", "floor", "ceiling"):
        value = getattr(pricing, key)
        if not value.is_finite() or value <= 0:
            problems.append(f"pricing.{key}: must be a positive amount")
    if pricing.floor > pricing.ceiling:
        problems.append("pricing.floor: must not exceed pricing.ceiling")
    for key in ("premium_floor", "premium_ceiling"):
        bounds = getattr(pricing, key)
        if set(bounds) != set(PREMIUM_MONTHS):
            problems.append(f'pricing.{key}: must give an amount for exactly "3", "6" and "12" months')
        elif any(not value.is_finite() or value <= 0 for value in bounds.values()):
            problems.append(f"pricing.{key}: every amount must be positive")
    if all(set(b) == set(PREMIUM_MONTHS) for b in (pricing.premium_floor, pricing.premium_ceiling)):
        for months in PREMIUM_MONTHS:
            if pricing.premium_floor[months] > pricing.premium_ceiling[months]:
                problems.append(f"pricing.premium_floor.{months}: must not exceed pricing.premium_ceiling.{months}")
    if not config.referral.percent.is_finite() or not 0 <= config.referral.percent <= 100:
        problems.append("referral.percent: must be between 0 and 100")
    if not config.fragment.low_balance_ton.is_finite() or config.fragment.low_balance_ton < 0:
        problems.append("fragment.low_balance_ton: must be zero or more")
    if config.shop.min_topup > config.shop.max_topup:
        problems.append("shop.min_topup: must not exceed shop.max_topup")
    if config.web.public_url and not config.web.public_url.startswith(("http://", "https://")):
        problems.append("web.public_url: must start with http:// or https://")
    for entry in (*config.heleket.allowed_ips, *config.web.trusted_proxies):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problems.append(f"{entry!r} in heleket.allowed_ips or web.trusted_proxies: not an IP address or network")
    if bool(config.web.tls_cert) != bool(config.web.tls_key):
        problems.append("web.tls_cert, web.tls_key: set both (HTTPS) or neither (plain HTTP)")
    if config.supervisor.backoff_initial > config.supervisor.backoff_max:
        problems.append("supervisor.backoff_initial: must not exceed supervisor.backoff_max")
    for key, url in (
        ("telegram.api_base", config.telegram.api_base),
        ("heleket.base_url", config.heleket.base_url),
        ("fragment.base_url", config.fragment.base_url),
    ):
        if not url.startswith(("http://", "https://")):
            problems.append(f"{key}: must start with http:// or https://")
    return problems


def serve_problems(config: Config) -> list[str]:
    """What `shopbot serve` needs beyond a well-formed file."""
    problems = []
    if not config.telegram.token:
        problems.append("telegram.token: required to serve (set it, telegram.token_file, or SHOPBOT_TELEGRAM__TOKEN)")
    if config.telegram.mode == "webhook":
        if not config.web.public_url and not config.telegram.webhook_url:
            problems.append(
                "web.public_url: required in webhook mode (Telegram posts to <public_url>/webhook/telegram)"
            )
        if not SECRET_TOKEN.fullmatch(config.telegram.webhook_secret.reveal()):
            problems.append("telegram.webhook_secret: required in webhook mode: 1-256 of A-Z a-z 0-9 _ -")
    problems.extend(tls_problems(config.web.tls_cert, config.web.tls_key))
    return problems
