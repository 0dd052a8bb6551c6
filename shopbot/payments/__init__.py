"""Crypto payments through Heleket: the API client, webhook verification and the wire formats."""
