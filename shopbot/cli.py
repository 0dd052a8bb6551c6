"""The `shopbot` command line. Every failure an operator can cause ends in one clear line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anyio

from shopbot.config import Config, load_config, serve_problems
from shopbot.config.secret import secret_values
from shopbot.config.show import render_config
from shopbot.errors import ConfigError, ShopbotError
from shopbot.logs import configure_logging

log = logging.getLogger("shopbot")


def shop_version() -> str:
    try:
        return version("shopbot")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopbot", description="A self-hosted Telegram shop for Stars and Premium.")
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration file (default: $SHOPBOT_CONFIG or ./shopbot.toml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("serve", help="run the shop: bot, web server and workers")
    commands.add_parser("migrate", help="apply database migrations and exit")
    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    config_commands.add_parser("check", help="print the effective configuration (secrets masked) and check it")
    commands.add_parser("version", help="print shopbot's version")
    return parser


def fail(message: str) -> int:
    print(f"shopbot: error: {message}", file=sys.stderr)
    return 1


def command_config_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"shopbot: error: {problem}", file=sys.stderr)
        return 1
    print(render_config(config))
    problems = serve_problems(config)
    for problem in problems:
        print(f"shopbot: error: {problem}", file=sys.stderr)
    if not problems:
        print("configuration is valid", file=sys.stderr)
    return 1 if problems else 0


def load_for_running(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    configure_logging(config.log, secret_values(config))
    return config


def command_serve(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    problems = serve_problems(config)
    if problems:
        raise ConfigError(problems)
    from shopbot.app import serve  # imported late: aiogram takes seconds to import

    return anyio.run(serve, config, backend="asyncio")


def command_migrate(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.db.commands import migrate

    applied = anyio.run(migrate, config, backend="asyncio")
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "; the database is up to date"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `shopbot` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"shopbot {shop_version()}")
            return 0
        if args.command == "config":
            return command_config_check(args)
        if args.command == "migrate":
            return command_migrate(args)
        return command_serve(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"shopbot: error: {problem}", file=sys.stderr)
        return 1
    except ShopbotError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
