"""Logging: readable lines on a terminal, one JSON object per line elsewhere, secrets redacted."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from shopbot.config.schema import LogConfig

REDACTED = "********"
# Libraries that log every update or request at INFO; an operator wants to see the shop's own lines.
NOISY_LOGGERS = {
    "aiogram.event": logging.WARNING,
    "aiogram.dispatcher": logging.WARNING,
    "aiogram.middlewares": logging.WARNING,  # "Answer to callback query id=…": one INFO line per button press
    "hypercorn.access": logging.WARNING,
    "httpx": logging.WARNING,
    "asyncpg": logging.WARNING,
}
_json = msgspec.json.Encoder()
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Redactor:
    """The secrets to blank, longest first (so a secret that contains another is blanked whole). Secrets
    learnt at run time (fresh Fragment cookies) are added with `add`; the set is replaced, never mutated, so a
    formatter in another thread always sees a whole one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = set(self.secrets) | {s for s in secrets if len(s) >= 4}
        self.secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception text. Every text is
    redacted before it is encoded: encoding escapes quotes, backslashes and control characters, after which
    a secret containing one of them would no longer be found in the line."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redact
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                if isinstance(value, (int, float, bool, type(None))):
                    entry[key] = value
                else:
                    entry[key] = redact(value if isinstance(value, str) else repr(value))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return _json.encode(entry).decode()


class RedactingFormatter(logging.Formatter):
    """Wraps a text formatter and blanks every known secret in what it produced, tracebacks included."""

    def __init__(self, inner: logging.Formatter, redact: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self.inner.format(record))


_installed = Redactor()  # the redactor of the handler configure_logging installed


def add_secrets(secrets: Iterable[str]) -> None:
    """Secrets learnt at run time (fresh Fragment cookies): blanked in every line from now on."""
    _installed.add(secrets)


class ShopHandler(logging.StreamHandler[Any]):
    """The root handler `configure_logging` installs: a second call replaces it instead of adding another."""


def choose_format(config: LogConfig, stream: Any) -> str:
    """`auto` means text on a terminal and JSON when the output is collected by something else."""
    if config.format != "auto":
        return config.format
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def configure_logging(config: LogConfig, secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Install the root handler; call once at start-up, again to change the secrets redacted."""
    global _installed
    stream = stream or sys.stderr
    _installed = Redactor(secrets)
    if choose_format(config, stream) == "json":
        formatter: logging.Formatter = JsonFormatter(_installed)
    else:
        text = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        formatter = RedactingFormatter(text, _installed)
    handler = ShopHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, ShopHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    for name, level in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(max(level, logging.getLevelName(config.level)))
