"""Wiring and supervision: builds the shop's parts from the configuration and runs them as services."""
