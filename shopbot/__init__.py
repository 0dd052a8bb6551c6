"""shopbot: a self-hosted Telegram shop. What each package owns, and which it may call: shopbot/README.md."""
