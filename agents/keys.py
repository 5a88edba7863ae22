"""API keys read from environment variables that the machine's operator permits.

Staff name the variable that holds an agent's key (the key never enters the database),
but not every variable of the server process is a key: ``SECRET_KEY``, ``DATABASE_URL``
and the rest must never be sent to a base URL that staff can point anywhere. Only names
in ``AGENT_KEY_VARIABLES`` (exact names, or prefixes ending in ``*``) may be named, and
the list is checked both when an agent is saved and every time a key is read, so a row
saved before the list changed cannot reach a variable either.
"""

from __future__ import annotations

import os

from django.conf import settings


class KeyVariableRefused(ValueError):
    """The named variable is not one the operator permits agents to read."""


def key_variable_allowed(name: str) -> bool:
    for pattern in settings.AGENT_KEY_VARIABLES:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]) and len(name) > len(pattern) - 1:
                return True
        elif name == pattern:
            return True
    return False


def refusal(name: str) -> str:
    """Why ``name`` may not be used, in words for the staff member who typed it."""
    permitted = ", ".join(settings.AGENT_KEY_VARIABLES) or "(none)"
    return (
        f"{name} is not a permitted key variable. This server permits: {permitted} "
        "(the AGENT_KEY_VARIABLES setting of the machine's operator)."
    )


def read_key(name: str) -> str:
    """The value of key variable ``name`` ("" when it is unset or no name is given)."""
    if not name:
        return ""
    if not key_variable_allowed(name):
        raise KeyVariableRefused(refusal(name))
    return os.environ.get(name, "")
