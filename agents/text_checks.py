"""Whether text from outside can be stored and spoken, checked once at each channel's edge.

JSON can carry what no database column holds: lone UTF-16 surrogates (``"\\ud800"``), which
UTF-8 cannot encode, and U+0000, which PostgreSQL refuses in text. A reply streamed for
such text would fail only when it is stored, after the caller had it, so every channel
refuses it before answering, with its own documented error.
"""

from __future__ import annotations

from typing import Any

#: How deep :func:`unstorable_reason` looks into nested JSON before giving up on it.
MAX_DEPTH = 64


def unstorable_reason(value: Any, _depth: int = 0) -> str | None:
    """Why some string in ``value`` (a string, or JSON lists and objects of them) cannot be
    stored, or None when all of them can."""
    if isinstance(value, str):
        if "\x00" in value:
            return "text must not contain U+0000 (NUL)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (it holds a lone surrogate)"
        return None
    if _depth >= MAX_DEPTH:
        return "the data is nested too deeply"
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        reason = unstorable_reason(item, _depth + 1)
        if reason is not None:
            return reason
    return None
