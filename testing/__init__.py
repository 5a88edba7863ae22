"""Test doubles for the outside world (importable by any app's tests, never by app code)."""
