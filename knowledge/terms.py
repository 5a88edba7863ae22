"""Turning a spoken question into search terms. Pure Python, no Django.

Both index backends rank with BM25 over an OR of the terms, so the words that carry no
meaning ("what", "is", "the") are dropped here: with OR semantics they would otherwise
match nearly every chunk and blur the ranking. SQLite's FTS5 has no stop-word list of
its own; PostgreSQL's ``english`` configuration would drop most of them anyway.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TERMS", "STOPWORDS", "search_terms"]

MAX_TERMS = 32

# English function words, question words and fillers common in spoken questions.
_STOPWORD_TEXT = """
a about above after again against all am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do
does doesn't doing don't down during each few for from further had hadn't has hasn't
have haven't having he her here hers herself him himself his how i if in into is isn't
it it's its itself just let's me might more most mustn't my myself no nor not now of off
on once only or other ought our ours ourselves out over own same shan't she should
shouldn't so some such than that that's the their theirs them themselves then there
there's these they this those through to too under until up upon very was wasn't we were
weren't what what's when where which while who whom why will with won't would wouldn't
you your yours yourself yourselves also please tell know want need like get got say said
hi hello hey thanks thank okay ok yes yeah um uh well really much many
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def search_terms(text: str) -> list[str]:
    """The distinct meaningful words of ``text``, lower-cased, in order of appearance.

    Words are letters and digits (any script); stop words and single letters are
    dropped; at most :data:`MAX_TERMS` are kept. The result is safe to quote into an
    FTS5 or tsquery expression: it contains no operators or quotes.
    """
    terms: list[str] = []
    seen: set[str] = set()
    for match in _WORD.finditer(text.lower()):
        word = match.group()
        if word in STOPWORDS:
            continue
        word = word.split("'", 1)[0]  # "policy's" -> "policy"
        if len(word) < 2 and not word.isdigit():
            continue
        if word in seen or word in STOPWORDS:
            continue
        seen.add(word)
        terms.append(word)
        if len(terms) == MAX_TERMS:
            break
    return terms
