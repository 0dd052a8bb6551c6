"""Log output: JSON lines for collectors, readable lines on a terminal, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shopbot.config.schema import LogConfig
from shopbot.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_and_extras() -> None:
    out = io.StringIO()
    configure_logging(LogConfig(format="json"), stream=out)
    logging.getLogger("shopbot.test").info("order %s paid", 42, extra={"order_id": 42})
    entry = json.loads(out.getvalue())
    assert entry["level"] == "INFO" and entry["logger"] == "shopbot.test"
    assert entry["message"] == "order 42 paid" and entry["order_id"] == 42


def test_auto_format_is_text_when_not_a_terminal_is_json() -> None:
    out = io.StringIO()  # not a TTY: something collects the output
    configure_logging(LogConfig(format="auto"), stream=out)
    logging.getLogger("shopbot.test").warning("hello")
    assert json.loads(out.getvalue())["message"] == "hello"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    configure_logging(LogConfig(format="auto"), stream=tty)
    logging.getLogger("shopbot.test").warning("hello")
    assert "WARNING shopbot.test: hello" in tty.getvalue()


def test_secrets_are_blanked_in_messages_and_tracebacks() -> None:
    token = "123456:AAE-secret-token"
    out = io.StringIO()
    configure_logging(LogConfig(format="json"), secrets=[token, "seed words here"], stream=out)
    log = logging.getLogger("shopbot.test")
    log.error("calling https://api.telegram.org/bot%s/getMe", token)
    try:
        raise RuntimeError(f"failed with seed words here and {token}")
    except RuntimeError:
        log.exception("boom")
    text = out.getvalue()
    assert token not in text and "seed words here" not in text
    assert text.count("********") >= 3


def test_noisy_library_loggers_are_quieter_than_ours() -> None:
    out = io.StringIO()
    configure_logging(LogConfig(format="text", level="INFO"), stream=out)
    logging.getLogger("aiogram.event").info("Update id=1 is handled")
    logging.getLogger("aiogram.middlewares").info("Answer to callback query id=7")  # one per button press
    logging.getLogger("shopbot.test").info("shop line")
    assert "shop line" in out.getvalue() and "Update id=1" not in out.getvalue()
    assert "callback query" not in out.getvalue()


@pytest.mark.parametrize("secret", ['pa"ss\\word', "пароль-секрет", "tab\there\nnewline", 'stel_token="x\\y"'])
def test_a_secret_that_json_would_escape_is_still_blanked(secret: str) -> None:
    out = io.StringIO()
    configure_logging(LogConfig(format="json"), secrets=[secret], stream=out)
    log = logging.getLogger("shopbot.test")
    log.warning("cookies %s rejected", secret, extra={"detail": f"sent {secret}", "thing": [secret]})
    try:
        raise ValueError(secret)
    except ValueError:
        log.exception("boom")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["message"] == "cookies ******** rejected" and lines[0]["detail"] == "sent ********"
    assert all(secret not in json.dumps(line, ensure_ascii=False) for line in lines)
    assert secret not in out.getvalue() and json.dumps(secret)[1:-1] not in out.getvalue()
    assert "********" in lines[1]["exception"]


def test_cookies_learnt_at_run_time_are_blanked_from_then_on() -> None:
    from shopbot.app.fulfilment import Fulfilment
    from shopbot.config.secret import Secret

    out = io.StringIO()
    configure_logging(LogConfig(format="text"), stream=out)
    fresh = "stel_ssid=ssid-value-1; stel_token=token-value-2"
    nothing_selling = Fulfilment(None, None, None, None, None, None, None)  # type: ignore[arg-type]
    nothing_selling.use_cookies(Secret(fresh))
    logging.getLogger("shopbot.test").warning("header %s; token alone token-value-2", fresh)
    assert "ssid-value-1" not in out.getvalue() and "token-value-2" not in out.getvalue()
    assert "header ********; token alone ********" in out.getvalue()
