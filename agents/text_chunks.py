"""Cut streamed model text into pieces that a speech synthesiser can start on early.

Speech should start as soon as there is a sensible unit to say, not when the whole
reply has arrived. :class:`ClauseChunker` takes text deltas as they stream in and
hands back sentences, or clauses once they are long enough to be worth a synthesis
call, or, failing both, word-bounded pieces of at most ``max_chars``.

Pure Python: nothing here imports Django, Channels, Celery or DRF.
"""

from __future__ import annotations

import re

__all__ = ["ClauseChunker"]

_WORD = re.compile(r"\S+")

# Closing quotes and brackets may follow the punctuation that ends a sentence or clause.
_CLOSERS = "\"'\u201d\u2019)]}\u00bb"
_OPENERS = "\"'\u201c\u2018([{\u00ab"
_SENTENCE_ENDS = (".", "!", "?", "\u2026")
_CLAUSE_ENDS = (",", ";", ":", "\u2014", "\u2013")  # comma, semicolon, colon, em/en dash
_SPACED_DASHES = frozenset({"-", "--"})

# Words whose full stop is part of the word, not the end of a sentence. Lower case.
_ABBREVIATIONS = frozenset(
    {
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "prof.",
        "st.",
        "mt.",
        "jr.",
        "sr.",
        "vs.",
        "etc.",
        "approx.",
        "dept.",
        "inc.",
        "ltd.",
        "co.",
        "fig.",
        "cf.",
    }
)
# Dotted abbreviations ("e.g.", "i.e.", "U.S.") and initials ("J. R. R."); "I." and "A."
# are left out because they end sentences more often than they abbreviate a name.
_DOTTED = re.compile(r"(?:[a-z]\.){2,}", re.IGNORECASE)
_INITIAL = re.compile(r"[B-HJ-Z]\.")


def _ends_sentence(word: str) -> bool:
    core = word.rstrip(_CLOSERS)
    if not core.endswith(_SENTENCE_ENDS):
        return False
    if not core.endswith(".") or core.endswith(".."):
        return True  # ! ? … and "..."
    bare = core.lstrip(_OPENERS)
    return not (
        bare.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(bare) or _INITIAL.fullmatch(bare)
    )


def _ends_clause(word: str) -> bool:
    return word in _SPACED_DASHES or word.rstrip(_CLOSERS).endswith(_CLAUSE_ENDS)


class ClauseChunker:
    """Incremental splitter of streamed text into speakable chunks.

    ``feed(delta)`` returns the chunks completed so far; ``flush()`` returns the rest at
    the end of the stream. A chunk ends:

    * after a sentence (``.``, ``!``, ``?``, ``…``, optionally followed by a closing
      quote or bracket), but not after abbreviations (``Mr.``, ``Dr.``, ``e.g.``) or
      initials, and never inside a word, so ``3.5`` and ``1,250`` stay whole;
    * after a clause (``,`` ``;`` ``:`` ``—`` or a spaced dash) once the chunk is at
      least ``min_chars`` long;
    * at the last word boundary before ``max_chars`` when neither comes in time (a single
      word longer than ``max_chars`` becomes a chunk of its own).

    A boundary is only known once the whitespace after it arrives, which is what keeps
    ``3.`` + ``5`` together. Chunks are stripped slices of the text, never empty, and
    ``" ".join(chunks)`` has exactly the text's words.
    """

    def __init__(self, min_chars: int = 20, max_chars: int = 200) -> None:
        if max_chars < 1 or not 0 <= min_chars <= max_chars:
            raise ValueError(
                f"need 0 <= min_chars <= max_chars and max_chars >= 1, "
                f"got min_chars={min_chars}, max_chars={max_chars}"
            )
        self.min_chars = min_chars
        self.max_chars = max_chars
        self._buf = ""  # text not yet emitted
        self._pos = 0  # words before this index in _buf have been examined
        self._start: int | None = None  # where the pending chunk's first word starts
        self._end = 0  # where the pending chunk's last examined word ends

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks it completed (often none)."""
        self._buf += delta
        return self._scan(final=False)

    def flush(self) -> list[str]:
        """End of the stream: return whatever is left, and start afresh."""
        chunks = self._scan(final=True)
        if self._start is not None:
            chunks.append(self._buf[self._start : self._end])
        self._buf, self._pos, self._start, self._end = "", 0, None, 0
        return chunks

    def _scan(self, *, final: bool) -> list[str]:
        chunks: list[str] = []
        buf = self._buf
        for match in _WORD.finditer(buf, self._pos):
            start, end = match.span()
            if end == len(buf) and not final:
                break  # the word may go on in the next delta
            if self._start is None:
                self._start = start
            elif end - self._start > self.max_chars:
                # Too long with this word: what came before it is a chunk of its own.
                chunks.append(buf[self._start : self._end])
                self._start = start
            self._end = self._pos = end
            word = match.group()
            if _ends_sentence(word) or (_ends_clause(word) and end - self._start >= self.min_chars):
                chunks.append(buf[self._start : end])
                self._start = None
        # Drop what has been emitted, so the buffer holds at most the pending chunk.
        cut = self._pos if self._start is None else self._start
        self._buf = buf[cut:]
        self._pos -= cut
        self._end = max(self._end - cut, 0)
        if self._start is not None:
            self._start -= cut
        return chunks
