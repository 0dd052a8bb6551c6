"""Guards shared by the bot, the web server and the workers: the Redis link, rate limits, circuit breakers."""
