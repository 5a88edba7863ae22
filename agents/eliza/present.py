"""Presentation of ELIZA's raw output for people (screens and speech synthesis).

The engine's output stays exactly as the 1966 program would print it; this module
only makes a readable copy of it.
"""

from __future__ import annotations

__all__ = ["sentence_case"]

# The pronoun I and its contractions keep their capital; everything else is lowered.
_CAPITAL_I = {"I": "I", "I'M": "I'm", "I'LL": "I'll", "I'VE": "I've", "I'D": "I'd"}
_ENDINGS = (".", "!", "?")


def sentence_case(raw: str) -> str:
    """Turn ELIZA's upper-case output into sentence case with a final full stop.

    ``"HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"`` becomes
    ``"How do you do. Please tell me your problem."`` and ``"GO ON , PLEASE"`` becomes
    ``"Go on, please."``: a lone ``,`` or ``.`` joins the word before it, a pair of
    lone ``'`` hugs the words between them, "I" (and I'm, I'll, I've, I'd) keeps its
    capital, and each sentence starts with a capital letter.
    """
    pieces: list[str] = []
    glue_next = False  # the previous piece was an opening quote
    quote_open = False
    for token in raw.split():
        if token in {",", "."} and pieces:
            pieces[-1] += token
            continue
        if token == "'":
            if quote_open and pieces:
                pieces[-1] += token
            else:
                pieces.append(token)
                glue_next = True
            quote_open = not quote_open
            continue
        word = _CAPITAL_I.get(token) or token.lower()
        if glue_next:
            pieces[-1] += word
            glue_next = False
        else:
            pieces.append(word)
    text = " ".join(pieces)
    if not text:
        return ""
    if not text.endswith(_ENDINGS):
        text += "."
    return _capitalise_sentences(text)


def _capitalise_sentences(text: str) -> str:
    chars = list(text)
    start = True
    for i, char in enumerate(chars):
        if start and char.isalpha():
            chars[i] = char.upper()
            start = False
        elif char in _ENDINGS and (i + 1 == len(chars) or chars[i + 1] == " "):
            start = True  # a full stop inside a token ("3.5") does not end a sentence
    return "".join(chars)
