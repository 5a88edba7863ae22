"""Splitting extracted text into overlapping chunks for retrieval. Pure Python, no Django.

A chunk is a run of whole sentences of one section, about ``target_words`` long. A new
heading always starts a new chunk (a passage about two topics ranks badly for both),
and consecutive chunks of a section share their last/first sentences (up to
``overlap_words``), so an answer that straddles a boundary is whole in one of them.
Each chunk keeps the page it starts on and its heading path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from knowledge.extraction import Block

__all__ = ["ChunkDraft", "chunk_blocks"]

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    index: int
    text: str
    page: int | None
    section: str
    word_count: int


@dataclass(frozen=True, slots=True)
class _Unit:
    """A sentence (or a slice of an over-long one) and whether it opens a paragraph."""

    text: str
    page: int | None
    words: int
    opens_paragraph: bool


def _units(block: Block, max_words: int) -> Iterator[_Unit]:
    first = True
    for sentence in _SENTENCE_END.split(block.text.strip()):
        words = sentence.split()
        # A "sentence" longer than a chunk (a table row, a list without stops) is cut.
        for start in range(0, len(words), max_words):
            piece = words[start : start + max_words]
            if piece:
                yield _Unit(" ".join(piece), block.page, len(piece), first)
                first = False


def _join(units: Sequence[_Unit]) -> str:
    parts: list[str] = []
    for position, unit in enumerate(units):
        if position:
            parts.append("\n\n" if unit.opens_paragraph else " ")
        parts.append(unit.text)
    return "".join(parts)


def chunk_blocks(
    blocks: Sequence[Block],
    *,
    target_words: int = 150,
    max_words: int = 220,
    overlap_words: int = 30,
) -> list[ChunkDraft]:
    """Chunks of ``blocks``, numbered from 0, in document order.

    A chunk closes once it holds ``target_words`` or the next sentence would take it past
    ``max_words``; it never mixes sections. Raises ``ValueError`` on inconsistent sizes.
    """
    if not 0 <= overlap_words < target_words <= max_words:
        raise ValueError("need 0 <= overlap_words < target_words <= max_words")
    drafts: list[ChunkDraft] = []

    def emit(units: Sequence[_Unit], section: str, carried: int) -> None:
        drafts.append(
            ChunkDraft(
                index=len(drafts),
                text=_join(units),
                # Where its new text starts; the overlap carried over may be a page earlier.
                page=units[carried].page,
                section=section,
                word_count=sum(unit.words for unit in units),
            )
        )

    section_blocks: list[Block] = []

    def close_section(section: str) -> None:
        units = [unit for block in section_blocks for unit in _units(block, max_words)]
        section_blocks.clear()
        current: list[_Unit] = []
        carried = 0  # units at the start of `current` repeated from the previous chunk
        for unit in units:
            size = sum(u.words for u in current)
            # A new page closes a chunk that is already half full, so that most chunks
            # lie on one page and their page reference is exact.
            new_page = bool(current) and unit.page != current[-1].page
            if len(current) > carried and (
                size >= target_words
                or size + unit.words > max_words
                or (new_page and size >= target_words // 2)
            ):
                emit(current, section, carried)
                current = _overlap(current, overlap_words)
                carried = len(current)
            current.append(unit)
        if len(current) > carried:
            emit(current, section, carried)

    section = ""
    for block in blocks:
        if section_blocks and block.section != section:
            close_section(section)
        section = block.section
        section_blocks.append(block)
    close_section(section)
    return drafts


def _overlap(units: Sequence[_Unit], overlap_words: int) -> list[_Unit]:
    """The trailing whole sentences of ``units`` that fit in ``overlap_words``."""
    kept: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.words > overlap_words:
            break
        kept.insert(0, unit)
        total += unit.words
    if len(kept) == len(units):
        return []  # never repeat a whole chunk
    return kept
