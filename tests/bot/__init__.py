"""Tests of the bot and its admin area, through the Bot API emulator."""
