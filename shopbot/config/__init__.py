"""Configuration: the schema, its loader, and the secret type."""

from shopbot.config.load import load_config, serve_problems
from shopbot.config.schema import Config
from shopbot.config.secret import Secret

__all__ = ["Config", "Secret", "load_config", "serve_problems"]
