"""Chunks: whole sentences, one section each, overlapping, with their page."""

from __future__ import annotations

import pytest

from knowledge.chunking import ChunkDraft, chunk_blocks
from knowledge.extraction import Block


def sentences(n: int, start: int = 0) -> str:
    return " ".join(f"Sentence {i} has six words here." for i in range(start, start + n))


def test_a_short_text_is_one_chunk() -> None:
    assert chunk_blocks([Block("One. Two.", page=3, section="S")]) == [
        ChunkDraft(index=0, text="One. Two.", page=3, section="S", word_count=2)
    ]


def test_long_text_is_cut_at_sentences_with_overlap() -> None:
    chunks = chunk_blocks([Block(sentences(10))], target_words=24, max_words=30, overlap_words=12)
    assert [chunk.text for chunk in chunks] == [
        sentences(4),
        sentences(4, start=2),
        sentences(4, start=4),
        sentences(4, start=6),
    ]
    assert [chunk.word_count for chunk in chunks] == [24] * 4


def test_a_new_section_starts_a_new_chunk_without_overlap() -> None:
    chunks = chunk_blocks([Block("Alpha text.", section="A"), Block("Beta text.", section="B")])
    assert [(c.index, c.section, c.text) for c in chunks] == [
        (0, "A", "Alpha text."),
        (1, "B", "Beta text."),
    ]


def test_paragraphs_stay_separated_inside_a_chunk() -> None:
    [chunk] = chunk_blocks([Block("First."), Block("Second.")])
    assert chunk.text == "First.\n\nSecond."


def test_an_over_long_sentence_is_cut_into_pieces() -> None:
    words = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_blocks([Block(words)], target_words=10, max_words=10, overlap_words=0)
    assert [chunk.word_count for chunk in chunks] == [10, 10, 5]


def test_a_page_break_closes_a_half_full_chunk_and_the_page_is_where_new_text_starts() -> None:
    chunks = chunk_blocks(
        [Block(sentences(3), page=1), Block(sentences(3, start=3), page=2)],
        target_words=30,
        max_words=40,
        overlap_words=6,
    )
    assert [(chunk.page, chunk.text) for chunk in chunks] == [
        (1, sentences(3)),
        (2, f"{sentences(1, start=2)}\n\n{sentences(3, start=3)}"),
    ]


def test_inconsistent_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap_words < target_words <= max_words"):
        chunk_blocks([], target_words=10, max_words=5)
