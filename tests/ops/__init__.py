"""Tests of what an operator runs and sees: serve, CLI, config, deploy, backup, logs, metrics, supervision."""
