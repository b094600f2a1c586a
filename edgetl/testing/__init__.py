"""Tiny models and data for the test suite (fast on 2 CPU cores)."""
