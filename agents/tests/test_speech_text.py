"""speakable(): text rewritten the way it should be said, with exact expected outputs."""

from __future__ import annotations

import pytest

from agents.speech_text import speakable


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("I have 3 cats.", "I have three cats."),
        ("Room 101", "Room one hundred and one"),
        ("It costs 1,250 dollars.", "It costs one thousand, two hundred and fifty dollars."),
        ("About 1,000,000 people", "About one million people"),
        ("Pi is 3.14.", "Pi is three point one four."),
        ("Add 0.05 more", "Add zero point zero five more"),
        ("1,250.75", "one thousand, two hundred and fifty point seven five"),
        ("It is -5 outside.", "It is minus five outside."),
        ("A drop of \u22122.75", "A drop of minus two point seven five"),
        ("Code 007", "Code zero zero seven"),
    ],
)
def test_numbers(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("$12.50", "twelve dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$1.01", "one dollar and one cent"),
        ("$0.99", "ninety-nine cents"),
        ("$12.5", "twelve dollars and fifty cents"),
        ("$1,250", "one thousand, two hundred and fifty dollars"),
        ("$0", "zero dollars"),
        ("\u20ac5", "five euros"),
        ("\u20ac1.20", "one euro and twenty cents"),
        ("\u00a31.50", "one pound and fifty pence"),
        ("\u00a30.01", "one penny"),
        ("a $2.5 million budget", "a two point five million dollars budget"),
        ("-$5", "minus five dollars"),
    ],
)
def test_currency(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("50%", "fifty percent"),
        ("a 3.5% rise", "a three point five percent rise"),
        ("-2 %", "minus two percent"),
    ],
)
def test_percentages(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("3:30 pm", "three thirty p m"),
        ("at 3:30pm today", "at three thirty p m today"),
        ("14:05", "fourteen oh five"),
        ("14:00", "fourteen hundred"),
        ("9:00", "nine o'clock"),
        ("9:00 AM", "nine a m"),
        ("Meet at 9am sharp.", "Meet at nine a m sharp."),
        ("Come at 3 p.m.", "Come at three p m."),
        ("Come at 11 a.m. tomorrow", "Come at eleven a m tomorrow"),
        ("Come at 3 P.M. Then go.", "Come at three p m. Then go."),
    ],
)
def test_times(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("1st", "first"),
        ("the 22nd of May", "the twenty-second of May"),
        ("3rd place", "third place"),
        ("the 101st time", "the one hundred and first time"),
        ("the 1,000th visitor", "the one thousandth visitor"),
    ],
)
def test_ordinals(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("in 1999", "in nineteen ninety-nine"),
        ("since 2010", "since twenty ten"),
        ("born in 1905.", "born in nineteen oh-five."),
        ("from 1200 until 1300", "from twelve hundred until thirteen hundred"),
        ("On May 5, 2024 we met.", "On May five, twenty twenty-four we met."),
        ("in January 1999", "in January nineteen ninety-nine"),
        ("the 1990s", "the nineteen nineties"),
        ("the 2000s", "the two thousands"),
        # Without a year word in front, a four-digit number is a quantity.
        ("We sold 1999 cups.", "We sold one thousand, nine hundred and ninety-nine cups."),
    ],
)
def test_years(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Dr. Lee", "Doctor Lee"),
        ("Mr. and Mrs. Smith", "Mister and Missus Smith"),
        ("Ms. Jones", "Miz Jones"),
        ("Mr Brown", "Mister Brown"),
        ("Prof. Xu", "Professor Xu"),
        ("St. Louis is big.", "Saint Louis is big."),
        ("visit St. Paul's today", "visit Saint Paul's today"),
        ("on Main St. near the park", "on Main Street near the park"),
        ("I live at 10 Downing St. Then...", "I live at ten Downing Street. Then..."),
        ("John Smith Jr. said hi.", "John Smith Junior said hi."),
        ("Ask John Smith Jr.", "Ask John Smith Junior."),
        ("apples, pears, etc. are fruit", "apples, pears, et cetera are fruit"),
        ("apples, pears, etc.", "apples, pears, et cetera."),
        ("fruit, e.g. apples", "fruit, for example apples"),
        ("fruit, i.e., food", "fruit, that is, food"),
        ("cats vs. dogs", "cats versus dogs"),
        ("cats vs dogs", "cats versus dogs"),
    ],
)
def test_abbreviations(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_a_whole_sentence() -> None:
    text = "Dr. Lee sees you at 3:30 pm on the 2nd for $12.50, that's 50% off since 2019."

    assert speakable(text) == (
        "Doctor Lee sees you at three thirty p m on the second for twelve dollars and fifty cents, "
        "that's fifty percent off since twenty nineteen."
    )


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Play the mp3 file", "Play the mp3 file"),
        ("a 4K screen", "a four K screen"),
        ("No digits here.", "No digits here."),
        ("", ""),
    ],
)
def test_what_is_not_a_quantity_is_left_alone(text: str, spoken: str) -> None:
    assert speakable(text) == spoken
