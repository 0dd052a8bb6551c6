"""HTTPS served by shopbot itself (`[web] tls_cert`, `tls_key`), for a host without a reverse proxy."""

from __future__ import annotations

import ssl

from shopbot.errors import ConfigError


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key and hang a service.
    return b""


def tls_problems(cert: str, key: str) -> list[str]:
    """Why the configured certificate and key cannot be served, one line each; empty when fine or unset.

    The files are loaded exactly as hypercorn will load them, so a start never ends in an SSL traceback.
    """
    if bool(cert) != bool(key):
        return ["web.tls_cert, web.tls_key: set both (HTTPS) or neither (plain HTTP)"]
    if not cert:
        return []
    problems = []
    for name, path in (("web.tls_cert", cert), ("web.tls_key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.append(f"{name}: cannot read {path!r}: {exc.strerror}")
    if problems:
        return problems
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as exc:
        reason = exc.reason or exc.__class__.__name__
        return [
            f"web.tls_cert, web.tls_key: {cert!r} and {key!r} are not a PEM certificate and "
            f"its unencrypted private key ({reason})"
        ]
    return []


def check_tls(cert: str, key: str) -> None:
    """Raise `ConfigError` naming what is wrong with the certificate or key."""
    problems = tls_problems(cert, key)
    if problems:
        raise ConfigError(problems)
