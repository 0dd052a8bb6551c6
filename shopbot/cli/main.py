"""The `shopbot` command line. Every failure an operator can cause ends in one clear line."""

from __future__ import annotations

import argparse
import gc
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
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
    parser.add_argument(
        "--config", type=Path, default=None, help="configuration file (default: $SHOPBOT_CONFIG or ./shopbot.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("serve", help="run the shop: bot, web server and workers")
    commands.add_parser("migrate", help="apply database migrations and exit")
    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    config_commands.add_parser("check", help="print the effective configuration (secrets masked) and check it")
    ledger = commands.add_parser("ledger", help="check the books")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND", required=True)
    ledger_commands.add_parser(
        "verify",
        help="prove every movement balances and every cached balance matches "
        "its postings; non-zero exit on any difference",
    )
    fragment = commands.add_parser("fragment", help="the Fragment wallet and the login KYC purchases use")
    fragment_commands = fragment.add_subparsers(dest="fragment_command", metavar="SUBCOMMAND", required=True)
    fragment_commands.add_parser(
        "check", help="pre-flight: configuration, wallet address and balance, cookies, the service"
    )
    imported = fragment_commands.add_parser(
        "import-cookies", help="store cookies exported from a browser logged in to fragment.com"
    )
    imported.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=None,
        help="Cookie-Editor export (Header String, JSON or Netscape); default: paste it (not "
        "echoed) or pipe it in. Never pass cookies as an argument: ps would show them",
    )
    log_in = fragment_commands.add_parser(
        "login", help="log the shop's browser profile in to Fragment; a person must confirm the login in Telegram"
    )
    log_in.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the Telegram confirmation (default 300)"
    )
    log_in.add_argument("--headless", action="store_true", help="no window even when DISPLAY is set")
    api = commands.add_parser("api", help="the REST API")
    api_commands = api.add_subparsers(dest="api_command", metavar="SUBCOMMAND", required=True)
    token = api_commands.add_parser("token", help="mint a bearer token for the REST API")
    token.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=["balance:read", "transactions:read"],
        help="a scope the token grants (repeat for several)",
    )
    token.add_argument("--user", type=int, default=None, help="limit the token to this Telegram user id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires (default 3600)")
    sandbox = commands.add_parser("sandbox", help="try the whole shop locally against emulated services")
    sandbox.add_argument("--host", default="127.0.0.1", help="address of the shop's web server (default 127.0.0.1)")
    sandbox.add_argument(
        "--port", type=int, default=8080, help="port of the shop's web server (default 8080; 0 picks one)"
    )
    sandbox.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/sandbox"),
        help="where the sandbox keeps its own database (default var/sandbox)",
    )
    sandbox.add_argument(
        "--landing-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds the emulated chain takes to land each payment, 0 to 60 (default 0; TON takes a few seconds)",
    )
    sandbox.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other than 127.0.0.1: anyone who reaches it can use the sandbox",
    )
    backup = commands.add_parser(
        "backup",
        help="write a pg_dump archive of the configured database (the embedded one included), also while the shop runs",
    )
    backup.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE",
        help="where to write it (default: shopbot-YYYYMMDD-HHMMSS.dump here; - for stdout)",
    )
    restore = commands.add_parser(
        "restore",
        help="replace the configured database's contents with a backup, in one transaction; stop the shop first",
    )
    restore.add_argument(
        "file", type=Path, help="a file `shopbot backup` wrote; - reads it from standard input (needs --yes)"
    )
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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


def import_serve() -> Callable[[Config], Awaitable[int]]:
    """The shop, imported late: aiogram takes seconds to import. The cyclic garbage collector waits meanwhile
    (the import makes a few hundred thousand objects that live as long as the process, and the collector would
    go through them again and again); the import's garbage is then collected once, and what is left is frozen
    (gc.freeze), so no later collection goes through it either."""
    gc.disable()
    try:
        from shopbot.app.serve import serve
    finally:
        gc.enable()
    gc.collect()
    gc.freeze()
    return serve


def command_serve(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    problems = serve_problems(config)
    if problems:
        raise ConfigError(problems)
    return anyio.run(import_serve(), config, backend="asyncio")


def command_migrate(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.cli.commands import migrate

    applied = anyio.run(migrate, config, backend="asyncio")
    print(
        f"applied {len(applied)} migration(s)"
        + (": " + ", ".join(applied) if applied else "; the database is up to date")
    )
    return 0


def find_shop_error(exc: BaseException) -> ShopbotError | None:
    """The first ShopbotError in an exception or nested exception groups."""
    if isinstance(exc, ShopbotError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_shop_error(inner)
            if found is not None:
                return found
    return None


def command_ledger_verify(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.cli.commands import verify_books

    report = anyio.run(verify_books, config, backend="asyncio")
    for problem in report.problems:
        print(f"shopbot: error: {problem}", file=sys.stderr)
    verdict = "the ledger balances" if report.ok else f"{len(report.problems)} problem(s) found"
    print(f"{report.movements} movements, {report.postings} postings, {report.accounts} accounts: {verdict}")
    return 0 if report.ok else 1


def command_fragment(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.cli.commands import fragment_check, fragment_import_cookies, fragment_login

    if args.fragment_command == "check":
        report = anyio.run(fragment_check, config, backend="asyncio")
        print("\n".join(report.lines))
        return 1 if report.problems else 0
    if args.fragment_command == "import-cookies":
        if args.file is not None:
            try:
                text = args.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return fail(f"{args.file}: cannot be read ({getattr(exc, 'strerror', None) or exc.__class__.__name__})")
        elif sys.stdin.isatty():
            text = getpass.getpass("Paste the fragment.com cookies (Header String), then Enter: ")
        else:
            text = sys.stdin.read()
        print(anyio.run(fragment_import_cookies, config, text, backend="asyncio"))
        return 0
    headless = True if args.headless else None
    print(anyio.run(partial(fragment_login, config, timeout=args.timeout, headless=headless), backend="asyncio"))
    return 0


def command_backup(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.db.backup import backup_database

    done = anyio.run(backup_database, config, args.output, backend="asyncio")
    size = f" ({done.size / 1024:.0f} KiB)" if done.size is not None else ""
    # With --output - the archive itself is on stdout.
    to_stdout = done.output == "-"
    print(
        f"backed up {done.database} (PostgreSQL {done.server_version}) to "
        f"{'standard output' if to_stdout else done.output}{size}",
        file=sys.stderr if to_stdout else sys.stdout,
    )
    return 0


def command_restore(args: argparse.Namespace) -> int:
    config = load_for_running(args)
    from shopbot.db.backup import describe_target, inspect_backup, restore_database, spooled_backup

    from_stdin = str(args.file) == "-"
    if from_stdin and not args.yes:
        return fail("restore - reads the backup from standard input, so it cannot ask for confirmation: add --yes")
    with spooled_backup(args.file) as path:
        backup = inspect_backup(path)
        target = describe_target(config.database)
        if not args.yes:
            if not sys.stdin.isatty():
                return fail(f"restore replaces everything in {target}; add --yes to confirm when not at a terminal")
            print(
                f"{args.file}: a backup of database {backup.database} (PostgreSQL {backup.server_version}) "
                f"taken {backup.created}"
            )
            try:
                answer = input(f"Replace everything in {target} with it? Type yes to go on: ")
            except EOFError:
                answer = ""
            if answer.strip().lower() != "yes":
                return fail("restore cancelled; nothing was changed")
        described = anyio.run(restore_database, config, backup, backend="asyncio")
    shown = "the backup from standard input" if from_stdin else args.file
    print(
        f"restored {shown} into {described}; `shopbot serve` applies newer migrations when it starts; "
        "check the books with `shopbot ledger verify`"
    )
    return 0


def command_api_token(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not config.api.jwt_secret:
        return fail("api.jwt_secret: not set, so the API is off and no token can be made")
    from shopbot.web.api_auth import mint_token

    try:
        print(mint_token(config.api.jwt_secret.reveal(), scopes=args.scope, user_id=args.user, ttl_seconds=args.ttl))
    except ValueError as exc:
        return fail(str(exc))
    return 0


MAX_LANDING_DELAY = 60.0  # the sandbox's chain: slow enough to watch batches form, never so slow it seems stuck


def command_sandbox(args: argparse.Namespace) -> int:
    from shopbot.config.schema import LogConfig

    configure_logging(LogConfig(level="INFO"))
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        return fail(f"--host {args.host} would expose the sandbox beyond this machine; add --allow-remote to mean it")
    if not 0 <= args.landing_delay <= MAX_LANDING_DELAY:  # also refuses nan
        return fail(f"--landing-delay {args.landing_delay:g}: give seconds from 0 to {MAX_LANDING_DELAY:g}")
    if args.allow_remote:
        log.warning("the sandbox listens on %s: anyone who can reach it can use it", args.host)
    from shopbot.sandbox.run import run_sandbox

    async def main_sandbox() -> int:
        async with anyio.create_task_group() as group:
            urls = await group.start(
                partial(
                    run_sandbox,
                    data_dir=args.data_dir,
                    host=args.host,
                    port=args.port,
                    landing_delay=args.landing_delay,
                )
            )
            print(
                f"shopbot sandbox is running at {urls.page} (open it in a browser; the shop itself: {urls.shop}, "
                f"emulators: Telegram {urls.telegram}, Heleket {urls.heleket}, Fragment {urls.fragment}); "
                "Ctrl-C stops it",
                flush=True,
            )
        return 0

    return anyio.run(main_sandbox, backend="asyncio")


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
        if args.command == "ledger":
            return command_ledger_verify(args)
        if args.command == "fragment":
            return command_fragment(args)
        if args.command == "api":
            return command_api_token(args)
        if args.command == "backup":
            return command_backup(args)
        if args.command == "restore":
            return command_restore(args)
        if args.command == "sandbox":
            return command_sandbox(args)
        return command_serve(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"shopbot: error: {problem}", file=sys.stderr)
        return 1
    except (ShopbotError, BaseExceptionGroup) as exc:
        # Task groups wrap a service's error in exception groups; the operator wants the error itself.
        error = find_shop_error(exc)
        if error is None:
            raise
        return fail(str(error))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
