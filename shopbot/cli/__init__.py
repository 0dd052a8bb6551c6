"""The `shopbot` command: parses the command line and runs one operator command."""

from shopbot.cli.main import main

__all__ = ["main"]
