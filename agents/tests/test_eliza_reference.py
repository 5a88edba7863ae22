"""The engine against the 1966 DOCTOR script and the reference conversations.

The script and conversations live in ``shared/eliza`` beside the repository (in CI
too) and are read at run time: they are test data, not part of the project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.eliza import Eliza, Script, parse_script
from agents.eliza.engine import bcd_chunk, bcd_hash

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
REFERENCE: dict[str, Any] = json.loads((SHARED / "conversations.json").read_text("utf-8"))
CONVERSATIONS: list[dict[str, Any]] = REFERENCE["conversations"]


@pytest.fixture(scope="module")
def doctor() -> Script:
    return parse_script((SHARED / "DOCTOR-1966.txt").read_text("utf-8"))


def test_reference_data_is_complete() -> None:
    # A truncated data file would otherwise shrink the test without anyone noticing.
    assert len(CONVERSATIONS) == 7
    assert sum(len(c["exchanges"]) for c in CONVERSATIONS) == 113


def test_greeting_matches_reference(doctor: Script) -> None:
    for conversation in CONVERSATIONS:
        assert Eliza(doctor).greeting == conversation["greeting"].upper()
    assert Eliza(doctor).greeting == "HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c["name"] for c in CONVERSATIONS])
def test_conversation_matches_reference(doctor: Script, conversation: dict[str, Any]) -> None:
    engine = Eliza(doctor)
    for index, exchange in enumerate(conversation["exchanges"]):
        got = engine.respond(exchange["user"])
        expected = exchange["eliza"].upper()
        assert got == expected, (
            f"{conversation['name']} exchange {index}: input {exchange['user']!r}\n"
            f"  expected {expected!r}\n  got      {got!r}"
        )


def test_engines_sharing_one_script_do_not_interfere(doctor: Script) -> None:
    first, second = CONVERSATIONS[0]["exchanges"], CONVERSATIONS[1]["exchanges"]
    a, b = Eliza(doctor), Eliza(doctor)
    for x, y in zip(first, second, strict=False):
        assert a.respond(x["user"]) == x["eliza"]
        assert b.respond(y["user"]) == y["eliza"]


def test_bcd_chunk_of_here_is_the_documented_octal_word() -> None:
    assert bcd_chunk("HERE") == 0o302551256060


def test_bcd_chunk_of_a_long_word_is_its_last_six_character_chunk() -> None:
    assert bcd_chunk("INVENTED") == bcd_chunk("ED")
    assert bcd_chunk("GLOUCESTERSHIRE") == bcd_chunk("IRE")
    assert bcd_chunk("BORING") == bcd_chunk("BORING")  # exactly six: one chunk


@pytest.mark.parametrize(
    ("word", "expected"),
    [("PURPOSE", 1), ("DEVONSHIRE", 0), ("PREDICAMENT", 3), ("GLOUCESTERSHIRE", 2)],
)
def test_memory_hash_check_values(word: str, expected: int) -> None:
    assert bcd_hash(word, 2) == expected
