"""Print the effective configuration as TOML, secrets masked."""

from __future__ import annotations

import msgspec

from shopbot.config.schema import Config
from shopbot.config.secret import encode_hook

_encoder = msgspec.json.Encoder(enc_hook=encode_hook)


def toml_value(value: object) -> str:
    """JSON scalars and arrays are valid TOML values, escapes included; tables are written inline."""
    if isinstance(value, dict):
        items = ", ".join(f"{_encoder.encode(str(k)).decode()} = {toml_value(v)}" for k, v in value.items())
        return f"{{ {items} }}"
    return _encoder.encode(value).decode()


def render_config(config: Config) -> str:
    """The configuration as `shopbot.toml` text; a secret shows only whether it is set."""
    lines: list[str] = []
    for section in msgspec.structs.fields(Config):
        lines.append(f"[{section.name}]")
        table = getattr(config, section.name)
        for field in msgspec.structs.fields(table):
            value = getattr(table, field.name)
            lines.append(f"{field.name} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
