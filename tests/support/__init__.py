"""Test support: the real-cluster pytest plugin and golden-file helpers."""
