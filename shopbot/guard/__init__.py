"""Guards shared by the bot, the web server and the workers: circuit breakers (and, later, limits)."""
