"""sentence_case: ELIZA's raw upper-case output made readable."""

from __future__ import annotations

import pytest

from agents.eliza import sentence_case


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM",
            "How do you do. Please tell me your problem.",
        ),
        ("GO ON , PLEASE", "Go on, please."),
        ("I SEE", "I see."),
        ("HMMM", "Hmmm."),
        ("I AM SORRY TO HEAR YOU ARE SAD", "I am sorry to hear you are sad."),
        ("WHY DO YOU THINK I SEEM TO UNDERSTAND YOU", "Why do you think I seem to understand you."),
        ("I'M SURE ITS NOT PLEASANT TO BE SAD", "I'm sure its not pleasant to be sad."),
        ("I'VE TOLD YOU BEFORE", "I've told you before."),
        ("YOU SAID I'LL AND I'D", "You said I'll and I'd."),
        ("DON'T YOU REALLY KNOW", "Don't you really know."),
        ("REALLY, EVERYONE", "Really, everyone."),
        ("WE WERE DISCUSSING YOU - NOT ME", "We were discussing you - not me."),
        ("ARE YOU SAYING 'NO' JUST TO BE NEGATIVE", "Are you saying 'no' just to be negative."),
        ("WHAT DOES ' HAPPY ' SUGGEST TO YOU", "What does 'happy' suggest to you."),
        ("HI THERE. WHAT'S ON YOUR MIND", "Hi there. What's on your mind."),
        ("ALREADY ENDS.", "Already ends."),
        ("ALWAYS? CAN YOU THINK OF ONE", "Always? Can you think of one."),
        ("IT COST 3.5 POUNDS", "It cost 3.5 pounds."),
        ("  SPACED   OUT  ", "Spaced out."),
        ("", ""),
    ],
)
def test_sentence_case(raw: str, expected: str) -> None:
    assert sentence_case(raw) == expected


def test_words_that_merely_contain_i_are_lowered() -> None:
    assert sentence_case("IT IS IN ICE") == "It is in ice."
