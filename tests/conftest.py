"""Shared pytest wiring: the real test-world cluster fixtures live in tests/support/cluster.py."""

pytest_plugins = ["tests.support.cluster", "tests.support.controller"]
