"""The per-conversation state of an ELIZA engine, and its JSON form.

Everything ELIZA remembers between inputs is here, so a conversation can be
saved after any response and picked up later by a new engine (in another process
or on another server) with identical results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATE_VERSION", "ElizaState"]

STATE_VERSION = 1

_FIELDS = frozenset({"version", "limit", "counters", "memory"})


@dataclass(slots=True)
class ElizaState:
    """What an ELIZA conversation carries from one input to the next.

    ``limit``: the LIMIT counter (1 to 4) as used for the latest input; a fresh
    conversation holds 1 so that the first input runs with LIMIT 2, as in 1966.
    ``counters``: per decomposition rule, how many times it has matched modulo its
    number of reassemblies, keyed by :attr:`Rule.counter_key` (``"MY#2"``, ``"NONE#1"``).
    ``memory``: responses laid down by the MEMORY keyword, oldest first.
    """

    limit: int = 1
    counters: dict[str, int] = field(default_factory=dict)
    memory: list[str] = field(default_factory=list)

    def copy(self) -> ElizaState:
        """An independent copy."""
        return ElizaState(self.limit, dict(self.counters), list(self.memory))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data, with a ``version`` field."""
        return {
            "version": STATE_VERSION,
            "limit": self.limit,
            "counters": dict(self.counters),
            "memory": list(self.memory),
        }

    @classmethod
    def from_dict(cls, data: object) -> ElizaState:
        """Rebuild a state from :meth:`to_dict` output.

        Raises ``ValueError`` naming the offending field when ``data`` is not what
        ``to_dict`` produces (wrong version, wrong types, out-of-range values).
        """
        if not isinstance(data, dict):
            raise ValueError(f"ELIZA state must be a dict, not {type(data).__name__}")
        unknown = sorted(str(key) for key in data.keys() - _FIELDS)
        if unknown:
            raise ValueError(f"ELIZA state has unknown field(s): {', '.join(unknown)}")
        missing = sorted(_FIELDS - data.keys())
        if missing:
            raise ValueError(f"ELIZA state is missing field(s): {', '.join(missing)}")
        version = data["version"]
        if version != STATE_VERSION or not _is_int(version):
            raise ValueError(f"ELIZA state version must be {STATE_VERSION}, got {version!r}")
        limit = data["limit"]
        if not _is_int(limit) or not 1 <= limit <= 4:
            raise ValueError(f"ELIZA state 'limit' must be an integer from 1 to 4, got {limit!r}")
        counters = data["counters"]
        if not isinstance(counters, dict):
            raise ValueError("ELIZA state 'counters' must be a dict of rule key to integer")
        for key, count in counters.items():
            if not isinstance(key, str) or "#" not in key:
                raise ValueError(
                    f"ELIZA state 'counters' key {key!r} is not a rule key like 'MY#2'"
                )
            if not _is_int(count) or count < 0:
                raise ValueError(
                    f"ELIZA state counter {key!r} must be a non-negative integer, got {count!r}"
                )
        memory = data["memory"]
        if not isinstance(memory, list) or not all(isinstance(item, str) for item in memory):
            raise ValueError("ELIZA state 'memory' must be a list of strings")
        return cls(limit, dict(counters), list(memory))


def _is_int(value: object) -> bool:
    # bool is an int subclass; True is not a LIMIT.
    return isinstance(value, int) and not isinstance(value, bool)
