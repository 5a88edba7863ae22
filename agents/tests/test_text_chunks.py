"""ClauseChunker: streamed text into speakable chunks, with exact boundaries."""

from __future__ import annotations

import random

import pytest

from agents.text_chunks import ClauseChunker


def chunk(text: str, *, step: int = 1, min_chars: int = 20, max_chars: int = 200) -> list[str]:
    """Feed ``text`` in deltas of ``step`` characters and flush."""
    chunker = ClauseChunker(min_chars=min_chars, max_chars=max_chars)
    chunks: list[str] = []
    for start in range(0, len(text), step):
        chunks += chunker.feed(text[start : start + step])
    return chunks + chunker.flush()


REPLY = (
    "Hello there. It costs 3.5 dollars, or 1,250 cents; Mr. Smith said so! "
    "Dr. J. R. R. Tolkien wrote books, e.g. The Hobbit, and more \u2014 lots more. "
    'Neither did I. "Really?" she asked.'
)
REPLY_CHUNKS = [
    "Hello there.",
    "It costs 3.5 dollars,",
    "or 1,250 cents; Mr. Smith said so!",
    "Dr. J. R. R. Tolkien wrote books,",
    "e.g. The Hobbit, and more \u2014",
    "lots more.",
    "Neither did I.",
    '"Really?"',
    "she asked.",
]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_chunks_do_not_depend_on_how_the_text_was_split_into_deltas(step: int) -> None:
    assert chunk(REPLY, step=step) == REPLY_CHUNKS


def test_joining_the_chunks_with_spaces_gives_back_the_words() -> None:
    text = "  Well,\nthat is   odd.  Isn't it?\n\nYes: very odd; truly, madly, deeply odd...  "

    chunks = chunk(text, min_chars=5)

    assert " ".join(chunks).split() == text.split()
    assert all(c == c.strip() and c for c in chunks)


def test_a_sentence_ends_only_once_the_following_whitespace_arrives() -> None:
    chunker = ClauseChunker()

    assert chunker.feed("It is 3.") == []
    assert chunker.feed("5 degrees.") == []
    assert chunker.feed(" Cold") == ["It is 3.5 degrees."]
    assert chunker.flush() == ["Cold"]


def test_question_and_exclamation_marks_end_sentences_even_when_short() -> None:
    assert chunk("Hi! Why? Ok.") == ["Hi!", "Why?", "Ok."]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert chunk('He said "stop." (Then he left.) Fine.') == [
        'He said "stop."',
        "(Then he left.)",
        "Fine.",
    ]


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Ask Mrs. Jones, Prof. Lee, or St. John vs. the U.S. team, e.g. today."

    assert chunk(text, min_chars=200) == [text]


def test_an_ellipsis_ends_a_sentence() -> None:
    assert chunk("Well... I suppose so.") == ["Well...", "I suppose so."]


def test_a_clause_ends_a_chunk_only_once_it_is_min_chars_long() -> None:
    text = "Yes, of course, I can help you with that, gladly."

    assert chunk(text) == ["Yes, of course, I can help you with that,", "gladly."]
    assert chunk(text, min_chars=10) == ["Yes, of course,", "I can help you with that,", "gladly."]


def test_semicolons_colons_and_spaced_dashes_are_clause_boundaries() -> None:
    text = "First the long part here; then another long part: and a third long one - and the end"

    assert chunk(text) == [
        "First the long part here;",
        "then another long part:",
        "and a third long one -",
        "and the end",
    ]


def test_punctuation_inside_a_word_is_not_a_boundary() -> None:
    text = "It was a well\u2014known fact: 1,250 people at 10:30, all of them."

    assert chunk(text, min_chars=1) == [
        "It was a well\u2014known fact:",
        "1,250 people at 10:30,",
        "all of them.",
    ]


def test_without_punctuation_text_is_cut_at_the_last_word_boundary_before_max_chars() -> None:
    text = "one two three four five six seven eight nine ten eleven"

    assert chunk(text, min_chars=5, max_chars=15) == [
        "one two three",
        "four five six",
        "seven eight",
        "nine ten eleven",
    ]


def test_a_word_longer_than_max_chars_is_a_chunk_of_its_own() -> None:
    assert chunk("go " + "x" * 30 + " now", min_chars=2, max_chars=10) == ["go", "x" * 30, "now"]


def test_flush_returns_the_rest_and_resets_the_chunker() -> None:
    chunker = ClauseChunker()
    assert chunker.feed("An unfinished thought") == []

    assert chunker.flush() == ["An unfinished thought"]
    assert chunker.flush() == []
    assert chunker.feed("Next. ") == ["Next."]


def test_whitespace_only_input_yields_no_chunks() -> None:
    chunker = ClauseChunker()

    assert chunker.feed("   \n ") == []
    assert chunker.flush() == []


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="min_chars=30, max_chars=10"):
        ClauseChunker(min_chars=30, max_chars=10)
    with pytest.raises(ValueError, match="max_chars=0"):
        ClauseChunker(min_chars=0, max_chars=0)


def test_random_text_in_random_deltas_keeps_every_word_and_every_limit() -> None:
    rng = random.Random(1966)
    vocabulary = [
        "Mr.",
        "3.5",
        "1,250",
        "ok,",
        "well;",
        "so:",
        "\u2014",
        "end.",
        "why?",
        "e.g.",
        "x" * 25,
        "word",
        "\n",
        "  ",
    ]
    for _ in range(200):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 60)))
        chunker = ClauseChunker(min_chars=rng.randint(0, 30), max_chars=rng.randint(30, 80))
        chunks: list[str] = []
        position = 0
        while position < len(text):
            step = rng.randint(1, 12)
            chunks += chunker.feed(text[position : position + step])
            position += step
        chunks += chunker.flush()

        assert " ".join(chunks).split() == text.split()
        assert all(c and c == c.strip() for c in chunks)
        assert all(len(c) <= chunker.max_chars or " " not in c for c in chunks)
