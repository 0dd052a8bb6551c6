"""Tests of the sandbox and its emulators."""
