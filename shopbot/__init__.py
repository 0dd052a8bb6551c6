"""shopbot: a self-hosted Telegram shop."""
