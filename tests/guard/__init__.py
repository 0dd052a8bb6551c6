"""Tests of the guards: circuit breakers, the cache."""
