"""Tests of the web server: REST API, ASGI serving, TLS, client addresses, the metrics listener."""
