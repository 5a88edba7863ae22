"""What a search backend returns."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk that matched, with its relevance (higher is better, comparable per query)."""

    chunk_id: int
    score: float
