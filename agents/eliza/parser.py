"""Reader and parser for ELIZA scripts in the 1966 S-expression format.

The format, as Weizenbaum published it in 1966, is a greeting list, the word ``START``,
one list per keyword, a ``(MEMORY …)`` list, a ``(NONE …)`` list and a final ``()``.
``;`` starts a comment that runs to the end of the line.

Parsing happens once per script. Everything the engine needs at run time (the
word table, compiled decomposition patterns, counter keys) is worked out here, so
a :class:`Script` is an immutable value that any number of engines, in any number
of threads, can share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

__all__ = [
    "ANY",
    "CHOICE",
    "COUNT",
    "TAGS",
    "WORD",
    "Keyword",
    "Link",
    "MemoryRule",
    "NewKey",
    "Pattern",
    "Pre",
    "Reassembly",
    "Rule",
    "Script",
    "ScriptError",
    "Words",
    "parse_script",
]


class ScriptError(ValueError):
    """A script could not be parsed; ``line`` and ``column`` (1-based) say where."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message, line, column)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


# --- The parsed script ---------------------------------------------------------------

# Decomposition element kinds. An element is a ``(kind, value)`` pair so the matcher
# can dispatch on a small int instead of on classes (it runs for every rule tried).
ANY: Final = 0  # ``0``: any number of words
COUNT: Final = 1  # ``n``: exactly n words; value is n
WORD: Final = 2  # a literal word; value is the word
CHOICE: Final = 3  # ``(* A B)``: value is a frozenset of words
TAGS: Final = 4  # ``(/TAG …)``: value is a frozenset of DLIST tags

Element: TypeAlias = tuple[int, object]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled decomposition pattern.

    ``min_rest[i]`` is the fewest words elements ``i…`` can match, which bounds how
    far a ``0`` may stretch; ``required`` holds the literal words the input must
    contain, a cheap test that rejects most rules before any matching starts;
    ``matches_all`` lets the engine skip matching for ``(0)``.
    """

    elements: tuple[Element, ...]
    min_rest: tuple[int, ...]
    required: frozenset[str]
    matches_all: bool  # the pattern is ``(0)``, the commonest of all

    @classmethod
    def build(cls, elements: tuple[Element, ...]) -> Pattern:
        min_rest = [0] * (len(elements) + 1)
        for i in range(len(elements) - 1, -1, -1):
            kind, value = elements[i]
            width = 0 if kind == ANY else value if kind == COUNT else 1
            assert isinstance(width, int)
            min_rest[i] = min_rest[i + 1] + width
        required = frozenset(str(v) for k, v in elements if k == WORD)
        return cls(elements, tuple(min_rest), required, elements == ((ANY, 0),))


Part: TypeAlias = str | int  # a reassembly word, or k: "the words matched by element k"


@dataclass(frozen=True, slots=True)
class Words:
    """A plain reassembly: words and 1-based element references."""

    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Link:
    """``(=KEYWORD)``: go on with KEYWORD's rules on the same text."""

    keyword: str


@dataclass(frozen=True, slots=True)
class NewKey:
    """``(NEWKEY)``: drop this keyword and try the next one on the keystack."""


@dataclass(frozen=True, slots=True)
class Pre:
    """``(PRE (reassembly) (=KEYWORD))``: rewrite the text, then go on with KEYWORD."""

    parts: tuple[Part, ...]
    keyword: str


Reassembly: TypeAlias = Words | Link | NewKey | Pre


@dataclass(frozen=True, slots=True)
class Rule:
    """One decomposition pattern and the reassemblies it cycles through.

    ``counter_key`` names the rule's reassembly counter in :class:`ElizaState`
    (``"MY#2"`` is MY's second rule); it depends only on the script text, so saved
    counters find their rule again after a restart.
    """

    pattern: Pattern
    reassemblies: tuple[Reassembly, ...]
    counter_key: str


@dataclass(frozen=True, slots=True)
class Keyword:
    """A script entry: substitution, DLIST tags, precedence, rules and fallback link."""

    word: str
    substitute: str | None
    tags: frozenset[str]
    precedence: int
    rules: tuple[Rule, ...]
    link: str | None

    @property
    def pushed(self) -> bool:
        """Whether the word goes on the keystack (only-substitute/tag words never do)."""
        return bool(self.rules) or self.link is not None


@dataclass(frozen=True, slots=True)
class MemoryRule:
    """One of the four MEMORY transformations: ``(pattern = reassembly)``."""

    pattern: Pattern
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed, immutable ELIZA script, shared freely between engines and threads.

    ``lexicon`` maps each script word to ``(pushed, precedence, replacement)``: the
    three facts the input scan needs, in one lookup. ``tags`` maps a word to its
    DLIST tags.
    """

    greeting: str
    keywords: Mapping[str, Keyword]
    memory_keyword: str | None
    memory_rules: tuple[MemoryRule, ...]
    none_rules: tuple[Rule, ...]
    lexicon: Mapping[str, tuple[bool, int, str]]
    tags: Mapping[str, frozenset[str]]


# --- Reader: text -> nested lists with positions -----------------------------------


@dataclass(frozen=True, slots=True)
class _Atom:
    text: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Node, ...]
    line: int
    column: int


_Node: TypeAlias = _Atom | _List


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(token, line, column)``; tokens are ``(``, ``)`` or an atom."""
    line, column, i, n = 1, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, column, i = line + 1, 1, i + 1
        elif ch.isspace():
            column, i = column + 1, i + 1
        elif ch == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "()":
            yield ch, line, column
            column, i = column + 1, i + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "();":
                i += 1
            yield text[start:i], line, column
            column += i - start


def _read(text: str) -> tuple[list[_Node], tuple[int, int]]:
    """Read the whole text into top-level nodes; also return the end-of-text position."""
    top: list[_Node] = []
    stack: list[tuple[list[_Node], int, int]] = []
    for token, line, column in _tokens(text):
        if token == "(":
            stack.append(([], line, column))
        elif token == ")":
            if not stack:
                raise ScriptError("unbalanced parenthesis: ')' has no matching '('", line, column)
            items, open_line, open_column = stack.pop()
            node = _List(tuple(items), open_line, open_column)
            (stack[-1][0] if stack else top).append(node)
        else:
            (stack[-1][0] if stack else top).append(_Atom(token, line, column))
    if stack:
        _, line, column = stack[-1]
        raise ScriptError("unbalanced parenthesis: '(' is never closed", line, column)
    lines = text.split("\n")
    return top, (len(lines), len(lines[-1]) + 1)


# --- Parser: nodes -> Script -------------------------------------------------------


def _is_int(atom: _Node) -> bool:
    return isinstance(atom, _Atom) and atom.text.isascii() and atom.text.isdigit()


def _marked(items: tuple[_Node, ...], marker: str) -> tuple[_Atom, ...] | None:
    """If ``items`` starts with ``marker`` (alone or glued to the next word), return the
    words after it, with the glued one split off: ``(=X)`` and ``(= X)`` both give X."""
    if not items or not isinstance(items[0], _Atom) or not items[0].text.startswith(marker):
        return None
    first = items[0]
    rest = items[1:]
    if len(first.text) > len(marker):
        rest = (_Atom(first.text[len(marker) :], first.line, first.column + len(marker)), *rest)
    atoms = tuple(item for item in rest if isinstance(item, _Atom))
    if len(atoms) != len(rest):
        bad = next(item for item in rest if isinstance(item, _List))
        raise ScriptError(f"a '{marker}' list holds words only, not lists", bad.line, bad.column)
    return atoms


class _Parser:
    def __init__(self) -> None:
        self.keywords: dict[str, Keyword] = {}
        self.entry_positions: dict[str, tuple[int, int]] = {}
        # Link targets are checked once every keyword is known: DOCTOR links forward.
        self.links: list[_Atom] = []
        self.memory_keyword: _Atom | None = None
        self.memory_rules: tuple[MemoryRule, ...] = ()
        self.none_rules: tuple[Rule, ...] | None = None
        self.seen_memory: _List | None = None

    def parse(self, text: str) -> Script:
        nodes, end = _read(text)
        if not nodes:
            raise ScriptError("empty script: expected a greeting list, START and keywords", 1, 1)
        greeting = self.greeting(nodes[0])
        if len(nodes) < 2:
            raise ScriptError("expected START after the greeting", *end)
        start = nodes[1]
        if not (isinstance(start, _Atom) and start.text.upper() == "START"):
            raise ScriptError("expected START after the greeting", start.line, start.column)
        final: _List | None = None
        for index in range(2, len(nodes)):
            node = nodes[index]
            if not isinstance(node, _List):
                raise ScriptError(f"expected a keyword list, found '{node.text}'", *_at(node))
            if not node.items:
                final = node
                if index + 1 < len(nodes):
                    raise ScriptError("unexpected text after the final ()", *_at(nodes[index + 1]))
                break
            self.entry(node)
        if final is None:
            raise ScriptError("missing the final () that ends the script", *end)
        if self.none_rules is None:
            raise ScriptError("the script has no NONE list", final.line, final.column)
        self.check_links()
        return self.script(greeting)

    def greeting(self, node: _Node) -> str:
        if not isinstance(node, _List):
            raise ScriptError("expected the greeting list first", *_at(node))
        if not node.items:
            raise ScriptError("the greeting list is empty", *_at(node))
        words = []
        for item in node.items:
            if not isinstance(item, _Atom):
                raise ScriptError("the greeting holds words only, not lists", *_at(item))
            words.append(item.text)
        return " ".join(words)

    def entry(self, node: _List) -> None:
        head = node.items[0]
        if not isinstance(head, _Atom):
            raise ScriptError("a keyword list must start with a word", *_at(head))
        name = head.text.upper()
        if name == "MEMORY":
            self.memory(node)
        elif name == "NONE":
            if self.none_rules is not None:
                raise ScriptError("duplicate NONE list", node.line, node.column)
            rules, link = self.body(node.items[1:], "NONE")
            if link is not None:
                raise ScriptError("the NONE list cannot link with (=KEYWORD)", *_at(link))
            if not rules:
                raise ScriptError("the NONE list has no rules", node.line, node.column)
            self.none_rules = rules
        else:
            self.keyword(name, node)

    def keyword(self, name: str, node: _List) -> None:
        if name in self.keywords:
            first_line, _ = self.entry_positions[name]
            raise ScriptError(
                f"duplicate entry for keyword {name} (first at line {first_line})", *_at(node)
            )
        items = node.items
        substitute: str | None = None
        tags: frozenset[str] = frozenset()
        precedence: int | None = None
        has_dlist = False
        i = 1
        while i < len(items) and isinstance(atom := items[i], _Atom):
            following = items[i + 1] if i + 1 < len(items) else None
            if atom.text.startswith("="):
                if substitute is not None:
                    raise ScriptError(f"{name} has two substitutes", *_at(atom))
                if atom.text != "=":
                    substitute = atom.text[1:].upper()
                elif isinstance(following, _Atom):
                    i += 1
                    substitute = following.text.upper()
                else:
                    raise ScriptError(f"'=' in {name} needs a substitute word", *_at(atom))
            elif atom.text.upper() == "DLIST":
                if has_dlist:
                    raise ScriptError(f"{name} has two DLISTs", *_at(atom))
                if not isinstance(following, _List):
                    raise ScriptError("DLIST needs a list of tags: DLIST(/TAG …)", *_at(atom))
                i += 1
                tags = self.dlist(following)
                has_dlist = True
            elif _is_int(atom):
                if precedence is not None:
                    raise ScriptError(f"{name} has two precedences", *_at(atom))
                precedence = int(atom.text)
            else:
                raise ScriptError(
                    f"unexpected word '{atom.text}' in the entry for {name}", *_at(atom)
                )
            i += 1
        rules, link = self.body(items[i:], name)
        if substitute is None and not has_dlist and not rules and link is None:
            raise ScriptError(f"the entry for {name} has no substitute, DLIST or rules", *_at(node))
        self.entry_positions[name] = (node.line, node.column)
        self.keywords[name] = Keyword(
            word=name,
            substitute=substitute,
            tags=tags,
            precedence=precedence or 0,
            rules=rules,
            link=link.text.upper() if link is not None else None,
        )

    def dlist(self, node: _List) -> frozenset[str]:
        tags = _marked(node.items, "/")
        if tags is None:
            raise ScriptError("DLIST tags must start with '/': DLIST(/TAG …)", *_at(node))
        if not tags:
            raise ScriptError("DLIST has no tags", *_at(node))
        return frozenset(tag.text.upper() for tag in tags)

    def body(self, items: tuple[_Node, ...], owner: str) -> tuple[tuple[Rule, ...], _Atom | None]:
        """Rules, then an optional ``(=OTHER)`` that must come last."""
        rules: list[Rule] = []
        for position, item in enumerate(items):
            if not isinstance(item, _List):
                raise ScriptError(
                    f"unexpected word '{item.text}' among the rules of {owner}", *_at(item)
                )
            link = self.link(item)
            if link is not None:
                if position != len(items) - 1:
                    raise ScriptError(
                        f"(={link.text}) must be the last item of {owner}", *_at(item)
                    )
                return tuple(rules), link
            rules.append(self.rule(item, f"{owner}#{len(rules) + 1}"))
        return tuple(rules), None

    def link(self, node: _List) -> _Atom | None:
        words = _marked(node.items, "=")
        if words is None:
            return None
        if len(words) != 1:
            raise ScriptError("a link names exactly one keyword: (=KEYWORD)", *_at(node))
        self.links.append(words[0])
        return words[0]

    def rule(self, node: _List, counter_key: str) -> Rule:
        if not node.items or not isinstance(node.items[0], _List):
            raise ScriptError(
                "expected a rule ((decomposition) (reassembly) …) or (=KEYWORD)", *_at(node)
            )
        decomposition = node.items[0]
        pattern = self.pattern(decomposition.items, decomposition)
        if len(node.items) < 2:
            raise ScriptError("the rule has no reassembly", *_at(node))
        reassemblies = []
        for item in node.items[1:]:
            if not isinstance(item, _List):
                raise ScriptError(f"a reassembly must be a list, found '{item.text}'", *_at(item))
            reassemblies.append(self.reassembly(item, len(pattern.elements)))
        return Rule(pattern, tuple(reassemblies), counter_key)

    def pattern(self, items: tuple[_Node, ...], where: _Node) -> Pattern:
        if not items:
            raise ScriptError("empty decomposition pattern", *_at(where))
        elements: list[Element] = []
        for item in items:
            if isinstance(item, _Atom):
                if _is_int(item):
                    count = int(item.text)
                    elements.append((ANY, 0) if count == 0 else (COUNT, count))
                else:
                    elements.append((WORD, item.text.upper()))
                continue
            choice = _marked(item.items, "*")
            tags = _marked(item.items, "/") if choice is None else None
            words = choice if choice is not None else tags
            if words is None:
                raise ScriptError("a pattern list must be (* WORD …) or (/TAG …)", *_at(item))
            if not words:
                raise ScriptError("empty (* …) or (/ …) list", *_at(item))
            kind = CHOICE if choice is not None else TAGS
            elements.append((kind, frozenset(word.text.upper() for word in words)))
        return Pattern.build(tuple(elements))

    def parts(self, items: tuple[_Node, ...], size: int) -> tuple[Part, ...]:
        """Reassembly words; integers must name an element of the decomposition."""
        parts: list[Part] = []
        for item in items:
            if isinstance(item, _List):
                raise ScriptError("a reassembly holds words only, not lists", *_at(item))
            if _is_int(item):
                number = int(item.text)
                if not 1 <= number <= size:
                    raise ScriptError(
                        f"reassembly refers to element {number}, "
                        f"but the decomposition has {size} element{'s' if size != 1 else ''}",
                        *_at(item),
                    )
                parts.append(number)
            else:
                parts.append(item.text)
        return tuple(parts)

    def reassembly(self, node: _List, size: int) -> Reassembly:
        items = node.items
        if not items:
            raise ScriptError("empty reassembly", *_at(node))
        link = self.link(node)
        if link is not None:
            return Link(link.text.upper())
        head = items[0]
        if isinstance(head, _Atom) and head.text.upper() == "NEWKEY" and len(items) == 1:
            return NewKey()
        if isinstance(head, _Atom) and head.text.upper() == "PRE" and len(items) > 1:
            if not (
                len(items) == 3
                and isinstance(items[1], _List)
                and isinstance(items[2], _List)
                and (target := self.link(items[2])) is not None
            ):
                raise ScriptError("expected (PRE (reassembly) (=KEYWORD))", *_at(node))
            return Pre(self.parts(items[1].items, size), target.text.upper())
        return Words(self.parts(items, size))

    def memory(self, node: _List) -> None:
        if self.seen_memory is not None:
            raise ScriptError("duplicate MEMORY list", *_at(node))
        self.seen_memory = node
        items = node.items[1:]
        if not items or not isinstance(items[0], _Atom):
            raise ScriptError("MEMORY needs its keyword first: (MEMORY KEY …)", *_at(node))
        self.memory_keyword = items[0]
        transformations = items[1:]
        if len(transformations) != 4:
            raise ScriptError(
                "MEMORY needs exactly four (pattern = reassembly) items, "
                f"found {len(transformations)}",
                *_at(node),
            )
        rules = []
        for item in transformations:
            if not isinstance(item, _List):
                raise ScriptError(
                    "a MEMORY item must be a list: (pattern = reassembly)", *_at(item)
                )
            split = next(
                (
                    i
                    for i, part in enumerate(item.items)
                    if isinstance(part, _Atom) and part.text.startswith("=")
                ),
                None,
            )
            if split is None or split == 0:
                raise ScriptError("a MEMORY item needs the form (pattern = reassembly)", *_at(item))
            marker = item.items[split]
            assert isinstance(marker, _Atom)
            after = item.items[split + 1 :]
            if marker.text != "=":  # "=WORD": the glued word starts the reassembly
                glued = _Atom(marker.text[1:], marker.line, marker.column + 1)
                after = (glued, *after)
            if not after:
                raise ScriptError("a MEMORY item has nothing after '='", *_at(marker))
            pattern = self.pattern(item.items[:split], item)
            rules.append(MemoryRule(pattern, self.parts(after, len(pattern.elements))))
        self.memory_rules = tuple(rules)

    def check_links(self) -> None:
        for atom in self.links:
            if atom.text.upper() not in self.keywords:
                raise ScriptError(f"link to unknown keyword {atom.text}", *_at(atom))
        if self.memory_keyword is not None:
            key = self.memory_keyword
            if key.text.upper() not in self.keywords:
                raise ScriptError(
                    f"MEMORY keyword {key.text} has no entry in the script", *_at(key)
                )
        # A keyword whose whole body is a link that leads back to itself would loop forever.
        for name, entry in self.keywords.items():
            seen = {name}
            target = entry.link
            while target is not None and not self.keywords[target].rules:
                if target in seen:
                    line, column = self.entry_positions[name]
                    raise ScriptError(f"the links from {name} go round in a circle", line, column)
                seen.add(target)
                target = self.keywords[target].link

    def script(self, greeting: str) -> Script:
        lexicon = {
            word: (entry.pushed, entry.precedence, entry.substitute or word)
            for word, entry in self.keywords.items()
        }
        tags = {word: entry.tags for word, entry in self.keywords.items() if entry.tags}
        return Script(
            greeting=greeting,
            keywords=MappingProxyType(dict(self.keywords)),
            memory_keyword=self.memory_keyword.text.upper() if self.memory_keyword else None,
            memory_rules=self.memory_rules,
            none_rules=self.none_rules or (),
            lexicon=MappingProxyType(lexicon),
            tags=MappingProxyType(tags),
        )


def _at(node: _Node) -> tuple[int, int]:
    return node.line, node.column


def parse_script(text: str) -> Script:
    """Parse a script in the 1966 format.

    Raises :class:`ScriptError` (with the 1-based line and column of the fault) for
    anything malformed: unbalanced parentheses, a missing START or NONE list, a bad
    MEMORY list, a reassembly number outside its decomposition, a link to an unknown
    keyword, an empty script, text after the final ``()``, and so on.
    """
    return _Parser().parse(text)
