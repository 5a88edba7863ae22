"""The ELIZA engine: the 1966 transformation procedure over a parsed :class:`Script`.

Pure Python with no framework imports. One :class:`Eliza` holds one conversation;
it is not thread-safe, but the :class:`Script` it runs is immutable and may be
shared by any number of engines.

Per input: normalise and split the text (:func:`tokenize`), scan it for keywords
while substituting words and cutting at delimiters, then pop keywords off the
keystack and try their decomposition rules until one yields a response. The
details follow Weizenbaum's 1966 description of the program (the tests replay its
published conversations); the comments below mark where the 1966 program behaves in
a way that is easy to get wrong.
"""

from __future__ import annotations

from collections.abc import Mapping

from .parser import (
    ANY,
    CHOICE,
    COUNT,
    WORD,
    Link,
    NewKey,
    Part,
    Pattern,
    Pre,
    Reassembly,
    Rule,
    Script,
    Words,
)
from .state import ElizaState

__all__ = ["BUILT_IN_LINES", "Eliza", "bcd_chunk", "bcd_hash", "tokenize"]

# Answers when a keyword's rules all fail and it has no fallback link, by LIMIT 1 to 4.
# "GO ON , PLEASE" keeps the space before the comma: that is how 1966 ELIZA printed it.
BUILT_IN_LINES = ("PLEASE CONTINUE", "HMMM", "GO ON , PLEASE", "I SEE")

_DELIMITERS = frozenset({",", ".", "BUT"})

# Guards against scripts whose links chase each other forever at run time (e.g. a
# rule whose only reassembly is a link back to its own keyword).
_MAX_STEPS = 100

# Quotation marks other than the apostrophe-like U+2019: ASCII, typographic, angle,
# CJK corner brackets and fullwidth.
_QUOTES = (
    '"`\u2018\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a'
    "\u300c\u300d\u300e\u300f\u301d\u301e\u301f\uff02"
)
_NORMALISE = str.maketrans(
    {
        "?": " . ",
        "!": " . ",
        ".": " . ",
        ",": " , ",
        ":": " , ",
        ";": " , ",
        "\u2013": " , ",  # en dash
        "\u2014": " , ",  # em dash
        "\u2019": "'",  # right single quotation mark, the usual typed apostrophe
        "\u00a1": " ",  # ¡
        "\u00bf": " ",  # ¿
        **{quote: " " for quote in _QUOTES},
    }
)


def tokenize(text: str) -> list[str]:
    """Upper-case, normalise punctuation and split into words; ``,`` and ``.`` are words.

    ``?`` and ``!`` become ``.``; ``:``, ``;`` and en/em dashes become ``,``; quote
    marks, ``¡`` and ``¿`` become spaces; the ASCII hyphen stays part of the text.
    """
    return text.upper().translate(_NORMALISE).split()


def _bcd_codes() -> dict[str, int]:
    codes = {str(digit): digit for digit in range(10)}
    codes.update({"=": 0o13, "'": 0o14, "+": 0o20, ".": 0o33, ")": 0o34, "-": 0o40})
    codes.update({"$": 0o53, "*": 0o54, " ": 0o60, "/": 0o61, ",": 0o73, "(": 0o74})
    for first, letters in ((0o21, "ABCDEFGHI"), (0o41, "JKLMNOPQR"), (0o62, "STUVWXYZ")):
        codes.update({letter: first + i for i, letter in enumerate(letters)})
    return codes


_BCD = _bcd_codes()


def bcd_chunk(word: str) -> int:
    """The 36-bit IBM 7094 machine word holding the last six characters of ``word``.

    The 7094 stored six 6-bit BCD characters per machine word, so a word longer than
    six characters spans several machine words; this is the last of them, padded with
    spaces on the right (``INVENTED`` -> ``ED    ``), first character most significant.
    """
    chunk = word[(len(word) - 1) // 6 * 6 :] if word else ""
    value = 0
    for char in chunk.ljust(6):
        value = (value << 6) | _BCD.get(char, ord(char) & 0o77)
    return value


def bcd_hash(word: str, bits: int) -> int:
    """HASH(d, n) of the 1966 program over :func:`bcd_chunk` of ``word``.

    Mid-square: clear the sign bit (bit 35), square the 35-bit value, shift right by
    ``35 - bits // 2`` and keep the low ``bits`` bits. MEMORY uses ``bits=2``.
    """
    value = bcd_chunk(word) & ((1 << 35) - 1)
    return (value * value >> (35 - bits // 2)) & ((1 << bits) - 1)


def _match(
    pattern: Pattern, words: list[str], tags: Mapping[str, frozenset[str]]
) -> list[int] | None:
    """Match a decomposition pattern against the whole of ``words``.

    Returns the boundaries: element i matched ``words[b[i]:b[i + 1]]``. A ``0`` that is
    not last takes the fewest words that let the rest match (leftmost-shortest); the
    last element takes whatever remains.
    """
    if pattern.matches_all:
        return [0, len(words)]
    elements = pattern.elements
    bounds = [0] * (len(elements) + 1)
    bounds[-1] = len(words)
    if _step(elements, pattern.min_rest, words, tags, bounds, 0, 0):
        return bounds
    return None


def _step(
    elements: tuple[tuple[int, object], ...],
    min_rest: tuple[int, ...],
    words: list[str],
    tags: Mapping[str, frozenset[str]],
    bounds: list[int],
    index: int,
    at: int,
) -> bool:
    n = len(words)
    if index == len(elements):
        return at == n
    bounds[index] = at
    kind, value = elements[index]
    if kind == ANY:
        if index == len(elements) - 1:
            return True
        following = elements[index + 1]
        anchor = following[1] if following[0] == WORD else None
        for end in range(at, n - min_rest[index + 1] + 1):
            # Skip ends where a following literal cannot match: saves a call per word.
            if anchor is not None and words[end] != anchor:
                continue
            if _step(elements, min_rest, words, tags, bounds, index + 1, end):
                return True
        return False
    if kind == COUNT:
        assert isinstance(value, int)
        return at + value <= n and _step(
            elements, min_rest, words, tags, bounds, index + 1, at + value
        )
    if at >= n:
        return False
    word = words[at]
    if kind == WORD:
        ok = word == value
    elif kind == CHOICE:
        assert isinstance(value, frozenset)
        ok = word in value
    else:
        assert isinstance(value, frozenset)  # kind == TAGS
        ok = not value.isdisjoint(tags.get(word, ()))
    return ok and _step(elements, min_rest, words, tags, bounds, index + 1, at + 1)


def _reassemble(parts: tuple[Part, ...], words: list[str], bounds: list[int]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.extend(words[bounds[part - 1] : bounds[part]])
        else:
            out.append(part)
    return out


class Eliza:
    """One ELIZA conversation over a script.

    ``Eliza(script)`` starts fresh; ``Eliza(script, state=...)`` continues a saved
    conversation (the state is copied, so the caller's object is never changed).
    """

    __slots__ = ("_script", "_state")

    def __init__(self, script: Script, state: ElizaState | None = None) -> None:
        self._script = script
        self._state = state.copy() if state is not None else ElizaState()

    @property
    def script(self) -> Script:
        """The script this engine runs."""
        return self._script

    @property
    def greeting(self) -> str:
        """The script's greeting: raw, upper case, single-spaced."""
        return self._script.greeting

    @property
    def state(self) -> ElizaState:
        """A snapshot copy of the conversation state; changing it does not affect the engine."""
        return self._state.copy()

    def respond(self, user_text: str) -> str:
        """Return ELIZA's raw (upper-case, unpunctuated) response to one input."""
        state = self._state
        # LIMIT advances once per input, before anything else: 2 for the first input.
        state.limit = limit = state.limit % 4 + 1
        words, stack = self._scan(user_text)
        if not stack and limit == 4 and state.memory:
            return state.memory.pop(0)
        return self._transform(words, stack, limit)

    def _scan(self, text: str) -> tuple[list[str], list[str]]:
        """Substitute words, cut at delimiters and build the keystack (top = last item)."""
        lexicon = self._script.lexicon
        words: list[str] = []
        top: list[str] = []  # pushed on top, in order: the last one ends up topmost
        bottom: list[str] = []  # pushed at the bottom, in order: the first one ends up highest
        highest = 0
        for word in tokenize(text):
            if word in _DELIMITERS:
                if top or bottom:
                    break  # keep the clause that holds a keyword
                words = []  # no keyword yet: forget that clause and read on
                continue
            entry = lexicon.get(word)
            if entry is None:
                words.append(word)
                continue
            pushed, precedence, replacement = entry
            if pushed:
                # Only a strictly higher precedence goes on top; ties go to the bottom.
                if precedence > highest:
                    highest = precedence
                    top.append(word)
                else:
                    bottom.append(word)
            words.append(replacement)
        bottom.reverse()
        bottom.extend(top)
        return words, bottom

    def _transform(self, words: list[str], stack: list[str], limit: int) -> str:
        script = self._script
        keywords = script.keywords
        for _ in range(_MAX_STEPS):
            if stack:
                entry = keywords[stack.pop()]
                if entry.word == script.memory_keyword:
                    self._remember(words)
                rules, link = entry.rules, entry.link
            else:
                # Empty keystack: at the start, or after NEWKEY popped the last keyword.
                rules, link = script.none_rules, None
            found = self._decompose(rules, words)
            if found is None:
                if link is None:
                    return BUILT_IN_LINES[limit - 1]
                stack.append(link)  # fallback (=OTHER), or a body that is only a link
                continue
            reassembly, bounds = found
            if isinstance(reassembly, Words):
                return " ".join(_reassemble(reassembly.parts, words, bounds))
            if isinstance(reassembly, Link):
                stack.append(reassembly.keyword)
            elif isinstance(reassembly, Pre):
                words = _reassemble(reassembly.parts, words, bounds)
                stack.append(reassembly.keyword)
            else:
                assert isinstance(reassembly, NewKey)
        return BUILT_IN_LINES[limit - 1]

    def _decompose(
        self, rules: tuple[Rule, ...], words: list[str]
    ) -> tuple[Reassembly, list[int]] | None:
        """The first rule that matches, its next reassembly (advancing its counter) and bounds."""
        tags = self._script.tags
        present: set[str] | None = None
        for rule in rules:
            pattern = rule.pattern
            if pattern.required:
                if present is None:
                    present = set(words)
                if not pattern.required <= present:
                    continue
            bounds = _match(pattern, words, tags)
            if bounds is None:
                continue
            counters = self._state.counters
            choices = rule.reassemblies
            # The counter lives for the whole conversation; the modulo also keeps a
            # state saved under an older version of the script usable.
            turn = counters.get(rule.counter_key, 0) % len(choices)
            counters[rule.counter_key] = (turn + 1) % len(choices)
            return choices[turn], bounds
        return None

    def _remember(self, words: list[str]) -> None:
        """Lay down a memory: HASH of the last word picks one of the four transformations."""
        rules = self._script.memory_rules
        if not rules:
            return
        rule = rules[bcd_hash(words[-1] if words else "", 2) % len(rules)]
        bounds = _match(rule.pattern, words, self._script.tags)
        if bounds is not None:
            self._state.memory.append(" ".join(_reassemble(rule.parts, words, bounds)))
