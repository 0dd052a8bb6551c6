"""The Telegram side: the bot client, the dispatcher, the poller and the routers."""
