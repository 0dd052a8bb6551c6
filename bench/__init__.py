"""Benchmarks: the shop against ceilings measured in the same run on the same machine.

Scripts, not tests: pytest never collects this package (testpaths = ["tests"]) and CI never runs it.
Run `bench/run` (or `.venv/bin/python -m bench`); see bench/README.md.
"""
