"""The shop's web server: webhooks, health, metrics and the API."""
