"""Prepare text for speech synthesis: numbers, money, times and abbreviations as words.

Synthesisers read "$12.50", "3:30 pm" or "Dr." unpredictably (or not at all), so the
text is rewritten the way a person would say it. Every number is spelled by
``num2words``; this module only decides which reading a number gets (amount, year,
time, ordinal, digits).

Pure Python: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

__all__ = ["speakable"]


def _words(number: int, to: str = "cardinal") -> str:
    return str(num2words(number, to=to))


def _digits(digits: str) -> str:
    """Digit by digit: "05" -> "zero five" (decimals, zero-padded numbers)."""
    return " ".join(_words(int(digit)) for digit in digits)


def _amount(integer: str, fraction: str | None) -> str:
    """A plain amount: "1,250" -> "one thousand, two hundred and fifty", "3.14" -> "three
    point one four"."""
    plain = integer.replace(",", "")
    if len(plain) > 1 and plain.startswith("0") and fraction is None:
        return _digits(plain)  # "007", a zero-padded code: said digit by digit
    spoken = _words(int(plain))
    return f"{spoken} point {_digits(fraction)}" if fraction is not None else spoken


# --- abbreviations -----------------------------------------------------------------

# Titles: the full stop belongs to the abbreviation, and a name always follows.
_TITLES = {
    "Dr": "Doctor",
    "Mr": "Mister",
    "Mrs": "Missus",
    "Ms": "Miz",
    "Prof": "Professor",
    "Mt": "Mount",
}
# These often end a sentence, and then their full stop is also the sentence's.
_ENDINGS = {"Jr": "Junior", "Sr": "Senior", "etc": "et cetera"}
_LATIN = {"e.g.": "for example", "i.e.": "that is", "vs.": "versus", "vs": "versus"}

_ABBREVIATION = re.compile(
    r"""
    \b(?P<title>Dr|Mrs|Mr|Ms|Prof|Mt)\.
    | \b(?P<bare_title>Mrs|Mr)\b(?=\s+[A-Z])      # British style, no full stop
    | \b(?P<saint>St)\.
    | \b(?P<ending>Jr|Sr|etc)\.
    | (?<![\w.])(?P<latin>[eE]\.[gG]\.|[iI]\.[eE]\.|vs\.?)(?=[\s,;:)]|$)
    """,
    re.VERBOSE,
)
_PREVIOUS_WORD = re.compile(r"(\S+)\s*$")
_NEXT_WORD = re.compile(r"\s+(\S)")


def _sentence_goes_on(text: str, end: int) -> bool:
    """Whether the sentence continues after ``end`` (no new sentence starts there)."""
    following = _NEXT_WORD.match(text, end)
    return following is not None and not following.group(1).isupper()


def _street_or_saint(text: str, start: int, end: int) -> str:
    # "Main St." and "10 Downing St." follow the name; "St. Louis" and "St. Paul's" precede
    # it. A word ending a sentence is not the street's name.
    previous = _PREVIOUS_WORD.search(text, 0, start)
    before = previous.group(1) if previous else ""
    names_a_street = bool(before) and (before[0].isupper() or before[0].isdigit())
    if names_a_street and not before.endswith((".", "!", "?")):
        return "Street" if _sentence_goes_on(text, end) else "Street."
    following = _NEXT_WORD.match(text, end)
    if following is not None and following.group(1).isupper():
        return "Saint"
    return "Street" if _sentence_goes_on(text, end) else "Street."


def _expand_abbreviation(match: re.Match[str]) -> str:
    text = match.string
    if match["title"]:
        return _TITLES[match["title"]]
    if match["bare_title"]:
        return _TITLES[match["bare_title"]]
    if match["saint"]:
        return _street_or_saint(text, match.start(), match.end())
    if match["ending"]:
        word = _ENDINGS[match["ending"]]
        return word if _sentence_goes_on(text, match.end()) else f"{word}."
    return _LATIN[match["latin"].lower()]


# --- numbers -----------------------------------------------------------------------

_INTEGER = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_AM_PM = r"[AaPp]\.?\s?[Mm](?![A-Za-z])\.?"
_NUMBERS = re.compile(
    rf"""
    (?P<money>
        (?<![\w)])(?P<money_minus>[-\u2212])?(?P<symbol>[$€£])
        (?P<money_int>{_INTEGER})(?:\.(?P<money_frac>\d+))?
        (?:\s?(?P<scale>thousand|million|billion|trillion)\b)?
    )
    | (?P<time>
        (?<![\w:.])(?P<hour>\d{{1,2}}):(?P<minute>\d{{2}})(?![\d:])
        (?:\s?(?P<time_ampm>{_AM_PM}))?
    )
    | (?P<clock>(?<![\w:.])(?P<clock_hour>\d{{1,2}})\s?(?P<clock_ampm>{_AM_PM}))
    | (?P<ordinal>(?<![\w.])(?P<ordinal_int>{_INTEGER})(?i:st|nd|rd|th)\b)
    | (?P<decade>(?<![\w.])(?P<decade_year>1\d\d0|20\d0)'?s\b)
    | (?P<number>
        (?:(?<![\w)])(?P<minus>[-\u2212]))?(?<![A-Za-z.])
        (?P<int>{_INTEGER})(?:\.(?P<frac>\d+))?
        (?P<percent>\s?%)?
    )
    """,
    re.VERBOSE,
)

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
# Words after which a four-digit number is read as a year: "in 1999", "since 2010".
_YEAR_CONTEXT = re.compile(
    rf"""(?:\b(?:in|since|from|until|till|through|during|before|after|circa|year)
            |\b(?:{_MONTHS})\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?,?)?
         )\s+$""",
    re.IGNORECASE | re.VERBOSE,
)


def _money(match: re.Match[str]) -> str:
    one, many, small_one, small_many = _CURRENCIES[match["symbol"]]
    minus = "minus " if match["money_minus"] else ""
    integer, fraction, scale = match["money_int"], match["money_frac"], match["scale"]
    if scale:  # "$2.5 million": two point five million dollars
        return f"{minus}{_amount(integer, fraction)} {scale} {many}"
    if fraction is not None and len(fraction) > 2:  # not cents: "$0.125"
        return f"{minus}{_amount(integer, fraction)} {many}"
    units = int(integer.replace(",", ""))
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if units or not cents:
        parts.append(f"{_words(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{_words(cents)} {small_one if cents == 1 else small_many}")
    return minus + " and ".join(parts)


def _am_pm(text: str) -> str:
    return "a m" if text[0] in "aA" else "p m"


def _time(match: re.Match[str]) -> str:
    hour, minute, am_pm = int(match["hour"]), int(match["minute"]), match["time_ampm"]
    if hour > 23 or minute > 59:  # not a time after all: "25:61"
        return f"{_words(hour)} {_words(minute)}"
    if minute == 0:
        if am_pm:
            spoken = _words(hour)
        elif 1 <= hour <= 12:
            spoken = f"{_words(hour)} o'clock"
        else:
            spoken = f"{_words(hour)} hundred"  # 24-hour: "fourteen hundred"
    elif minute < 10:
        spoken = f"{_words(hour)} oh {_words(minute)}"
    else:
        spoken = f"{_words(hour)} {_words(minute)}"
    return f"{spoken} {_am_pm(am_pm)}{_stop(match, am_pm)}" if am_pm else spoken


def _clock(match: re.Match[str]) -> str:
    am_pm = match["clock_ampm"]
    return f"{_words(int(match['clock_hour']))} {_am_pm(am_pm)}{_stop(match, am_pm)}"


def _stop(match: re.Match[str], am_pm: str) -> str:
    # "at 3 p.m." ending a sentence: the full stop of "p.m." also ends the sentence.
    ends_with_stop = am_pm.endswith(".")
    return "." if ends_with_stop and not _sentence_goes_on(match.string, match.end()) else ""


def _number(match: re.Match[str]) -> str:
    text = match.string
    integer, fraction = match["int"], match["frac"]
    minus = "minus " if match["minus"] else ""
    if (
        not minus
        and fraction is None
        and len(integer) == 4
        and 1000 <= int(integer) <= 2099
        and _YEAR_CONTEXT.search(text, 0, match.start())
    ):
        spoken = _words(int(integer), to="year")
    else:
        spoken = minus + _amount(integer, fraction)
    if match["percent"]:
        spoken += " percent"
    # "4K", "10x": keep the letters as a word of their own.
    if match.end() < len(text) and text[match.end()].isalpha():
        spoken += " "
    return spoken


_SPEAKERS: dict[str, Callable[[re.Match[str]], str]] = {
    "money": _money,
    "time": _time,
    "clock": _clock,
    "ordinal": lambda m: _words(int(m["ordinal_int"].replace(",", "")), to="ordinal"),
    "decade": lambda m: _plural(_words(int(m["decade_year"]), to="year")),
    "number": _number,
}


def _plural(words: str) -> str:
    # "nineteen ninety" -> "nineteen nineties", "two thousand" -> "two thousands"
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _speak_number(match: re.Match[str]) -> str:
    assert match.lastgroup is not None  # every alternative is a named group
    return _SPEAKERS[match.lastgroup](match)


def speakable(text: str) -> str:
    """``text`` as it should be said: numbers, amounts, times, abbreviations in words.

    ``"Dr. Lee sees you at 3:30 pm for $12.50"`` becomes ``"Doctor Lee sees you at
    three thirty p m for twelve dollars and fifty cents"``. Covers integers and decimals
    (with thousands separators and minus signs), currency ($ € £, and "$2 million"),
    percentages, times (12- and 24-hour), ordinals ("22nd"), years after words such as
    "in" and "since" or a month, decades ("1990s"), and common abbreviations (Dr., Mr.,
    Mrs., Ms., St., Jr., etc., e.g., i.e., vs.). A number glued to letters in front
    ("mp3") is left alone: it is a name, not a quantity.
    """
    text = _ABBREVIATION.sub(_expand_abbreviation, text)
    return _NUMBERS.sub(_speak_number, text)
