"""Script parsing: the 1966 format, its error messages, and the default therapist script."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.eliza import Eliza, Script, ScriptError, load_default_script, parse_script
from agents.eliza.parser import CHOICE, TAGS, Link, NewKey, Pre, Words

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"

GREETING = "(HI)\nSTART\n"
END = "(NONE ((0) (N)))\n()\n"


def doctor() -> Script:
    return parse_script((SHARED / "DOCTOR-1966.txt").read_text("utf-8"))


# --- Good scripts ----------------------------------------------------------------------


def test_minimal_script_parses() -> None:
    script = parse_script("(HELLO THERE) START (NONE ((0) (GO ON))) ()")
    assert script.greeting == "HELLO THERE"
    assert dict(script.keywords) == {}
    assert script.memory_keyword is None
    assert len(script.none_rules) == 1
    assert script.none_rules[0].reassemblies == (Words(("GO", "ON")),)


def test_comments_are_ignored_anywhere() -> None:
    text = "; head\n(HI) ; greeting\nSTART\n(K ; keyword\n ((0) (X)))\n" + END + "; tail\n"
    assert parse_script(text).keywords["K"].rules[0].reassemblies == (Words(("X",)),)


def test_doctor_script_parses_unchanged() -> None:
    script = doctor()
    assert script.greeting == "HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"
    assert len(script.keywords) == 66
    assert script.memory_keyword == "MY"
    assert len(script.memory_rules) == 4
    assert len(script.none_rules) == 1
    assert len(script.none_rules[0].reassemblies) == 4


def test_doctor_keyword_with_substitute_precedence_and_body_link() -> None:
    dreamed = doctor().keywords["DREAMED"]
    assert (dreamed.substitute, dreamed.precedence, dreamed.link) == ("DREAMT", 4, "DREAMT")
    assert dreamed.rules == ()
    assert dreamed.pushed


def test_doctor_keyword_with_rules_then_fallback_link() -> None:
    why = doctor().keywords["WHY"]
    assert len(why.rules) == 2
    assert why.link == "WHAT"


def test_doctor_dlist_entries_are_tags_only_and_not_pushed() -> None:
    script = doctor()
    assert script.keywords["MOTHER"].tags == frozenset({"NOUN", "FAMILY"})
    assert script.keywords["MOM"].tags == frozenset({"FAMILY"})
    assert script.keywords["MOM"].substitute == "MOTHER"
    assert not script.keywords["SISTER"].pushed
    assert script.tags["BELIEVE"] == frozenset({"BELIEF"})


def test_doctor_special_reassemblies() -> None:
    script = doctor()
    assert script.keywords["DREAMT"].rules[0].reassemblies[3:] == (Link("DREAM"), NewKey())
    assert script.keywords["I'M"].rules[0].reassemblies == (Pre(("YOU", "ARE", 3), "I"),)


def test_doctor_choice_pattern_and_counter_keys() -> None:
    rule = doctor().keywords["I"].rules[1]
    assert rule.counter_key == "I#2"
    assert rule.pattern.elements[4] == (CHOICE, frozenset({"SAD", "UNHAPPY", "DEPRESSED", "SICK"}))


@pytest.mark.parametrize(
    ("glued", "separate"),
    [
        ("(L ((0) (X)))\n(K (=L))", "(L ((0) (X)))\n(K (= L))"),
        ("(K ((0 (*A B)) (X)))", "(K ((0 (* A B)) (X)))"),
        ("(K DLIST(/A B))", "(K DLIST(/ A B))"),
        ("(K =L)", "(K = L)"),
        ("(K ((0 (/A)) (X)))", "(K ((0 (/ A)) (X)))"),
    ],
)
def test_markers_may_be_glued_or_stand_alone(glued: str, separate: str) -> None:
    assert parse_script(GREETING + glued + "\n" + END) == parse_script(
        GREETING + separate + "\n" + END
    )


def test_tag_pattern_is_compiled() -> None:
    script = parse_script(GREETING + "(K ((0 (/A B) 0) (X)))\n" + END)
    assert script.keywords["K"].rules[0].pattern.elements[1] == (TAGS, frozenset({"A", "B"}))


def test_script_is_immutable() -> None:
    script = doctor()
    with pytest.raises(TypeError):
        script.keywords["NEW"] = script.keywords["YES"]  # type: ignore[index]


# --- Errors --------------------------------------------------------------------------

MALFORMED = [
    ("", 1, 1, "empty script: expected a greeting list, START and keywords"),
    ("; nothing\n  ; here\n", 1, 1, "empty script: expected a greeting list, START and keywords"),
    (GREETING + "(K ((0) (X))))\n" + END, 3, 14, "unbalanced parenthesis: ')' has no matching '('"),
    (GREETING + "(K ((0) (X))\n" + END, 3, 1, "unbalanced parenthesis: '(' is never closed"),
    ("(HI)\n(NONE ((0) (N)))\n()\n", 2, 1, "expected START after the greeting"),
    ("(HI)", 1, 5, "expected START after the greeting"),
    ("HELLO\nSTART\n" + END, 1, 1, "expected the greeting list first"),
    ("()\nSTART\n" + END, 1, 1, "the greeting list is empty"),
    (GREETING + "(K ((0) (X)))\n()\n", 4, 1, "the script has no NONE list"),
    (GREETING + "(NONE ((0) (N)))\n", 4, 1, "missing the final () that ends the script"),
    (GREETING + END + "(K ((0) (X)))\n", 5, 1, "unexpected text after the final ()"),
    (GREETING + END + "  END\n", 5, 3, "unexpected text after the final ()"),
    (
        GREETING + "(MY ((0) (X)))\n(MEMORY MY\n  (0 = A)\n  (0 = B)\n  (0 = C))\n" + END,
        4,
        1,
        "MEMORY needs exactly four (pattern = reassembly) items, found 3",
    ),
    (
        GREETING + "(MY ((0) (X)))\n(MEMORY MY (0 = A) (0 = B) (0 A) (0 = D))\n" + END,
        4,
        28,
        "a MEMORY item needs the form (pattern = reassembly)",
    ),
    (
        GREETING + "(MEMORY (0 = A) (0 = B) (0 = C) (0 = D))\n" + END,
        3,
        1,
        "MEMORY needs its keyword first: (MEMORY KEY …)",
    ),
    (
        GREETING + "(MEMORY MY (0 = A) (0 = B) (0 = C) (0 = D))\n" + END,
        3,
        9,
        "MEMORY keyword MY has no entry in the script",
    ),
    (
        GREETING + "(MY ((0) (X)))\n(MEMORY MY (0 = A) (0 = B) (0 = C 2) (0 = D))\n" + END,
        4,
        35,
        "reassembly refers to element 2, but the decomposition has 1 element",
    ),
    (
        GREETING + "(K\n    ((0 X)\n        (A 3)))\n" + END,
        5,
        12,
        "reassembly refers to element 3, but the decomposition has 2 elements",
    ),
    (
        GREETING + "(K ((0 X) (A 0)))\n" + END,
        3,
        14,
        "reassembly refers to element 0, but the decomposition has 2 elements",
    ),
    (GREETING + "(K ((0) (=NOPE)))\n" + END, 3, 11, "link to unknown keyword NOPE"),
    (GREETING + "(K (= NOPE))\n" + END, 3, 7, "link to unknown keyword NOPE"),
    (
        GREETING + "(L ((0) (X)))\n(K (=L) ((0) (X)))\n" + END,
        4,
        4,
        "(=L) must be the last item of K",
    ),
    (GREETING + "(K ((0) (=A B)))\n" + END, 3, 9, "a link names exactly one keyword: (=KEYWORD)"),
    (
        GREETING + "(K ((0) (X)))\n(K = Y)\n" + END,
        4,
        1,
        "duplicate entry for keyword K (first at line 3)",
    ),
    (GREETING + "(K (() (X)))\n" + END, 3, 5, "empty decomposition pattern"),
    (GREETING + "(K ((0)))\n" + END, 3, 4, "the rule has no reassembly"),
    (GREETING + "(K ((0) (PRE (X))))\n" + END, 3, 9, "expected (PRE (reassembly) (=KEYWORD))"),
    (GREETING + "(K DLIST(A))\n" + END, 3, 9, "DLIST tags must start with '/': DLIST(/TAG …)"),
    (GREETING + "(K 1 2 ((0) (X)))\n" + END, 3, 6, "K has two precedences"),
    (GREETING + "(A (=B))\n(B (=A))\n" + END, 3, 1, "the links from A go round in a circle"),
    (GREETING + "(K 5)\n" + END, 3, 1, "the entry for K has no substitute, DLIST or rules"),
    (GREETING + "(NONE ((0) (X)))\n" + END, 4, 1, "duplicate NONE list"),
    (GREETING + "(K ((0) (X)) OOPS)\n" + END, 3, 14, "unexpected word 'OOPS' among the rules of K"),
    (
        GREETING + "(K ((0 (A B)) (X)))\n" + END,
        3,
        8,
        "a pattern list must be (* WORD …) or (/TAG …)",
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), MALFORMED)
def test_malformed_script_raises_with_position(
    text: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(text)
    assert (caught.value.line, caught.value.column, caught.value.message) == (line, column, message)


def test_script_error_reads_with_its_position() -> None:
    error = ScriptError("unbalanced parenthesis", 12, 5)
    assert str(error) == "line 12, column 5: unbalanced parenthesis"
    assert isinstance(error, ValueError)


# --- The default therapist script ------------------------------------------------------


def test_default_script_parses_with_greeting_memory_and_none() -> None:
    script = load_default_script()
    assert script.greeting == "HELLO. WHAT WOULD YOU LIKE TO TALK ABOUT TODAY"
    assert script.memory_keyword == "MY"
    assert len(script.memory_rules) == 4
    assert len(script.none_rules[0].reassemblies) == 5
    assert {"WORK", "JOB", "SLEEP", "PHONE", "FRIEND", "STRESS"} <= script.keywords.keys()
    assert script.tags["MUM"] == frozenset({"FAMILY"})
    assert script.tags["LONELY"] == frozenset({"FEELING"})


def test_default_script_is_loaded_once() -> None:
    assert load_default_script() is load_default_script()


def test_default_script_shares_no_response_with_doctor() -> None:
    def texts(script: Script) -> set[tuple[str | int, ...]]:
        rules = [r for k in script.keywords.values() for r in k.rules] + list(script.none_rules)
        found = {x.parts for r in rules for x in r.reassemblies if isinstance(x, Words)}
        return found | {m.parts for m in script.memory_rules}

    assert texts(load_default_script()) & texts(doctor()) == set()


def test_default_script_conversation() -> None:
    engine = Eliza(load_default_script())
    exchanges = [
        ("Hi.", "HI THERE. WHAT'S ON YOUR MIND"),
        ("I feel sad all the time.", "WHAT IS MAKING YOU FEEL SAD"),
        ("My mother never listens to me.", "HOW DO YOU GET ALONG WITH YOUR MOTHER"),
        ("Work is really getting to me.", "HOW ARE THINGS AT WORK"),
        ("I can't sleep at night.", "HOW HAVE YOU BEEN SLEEPING LATELY"),
        ("I'm worried about money.", "WHAT DOES THE ANXIETY FEEL LIKE FOR YOU"),
        ("You are a robot.", "DOES IT FEEL ODD TO TALK TO A PROGRAM"),
        ("It rained today.", "I SEE. PLEASE TELL ME MORE"),
        ("My boss shouts at me.", "HOW DO YOU GET ON WITH YOUR BOSS"),
        ("I need a holiday.", "WHAT WOULD HAVING A HOLIDAY CHANGE FOR YOU"),
        (
            "Nothing much.",
            "YOU MENTIONED YOUR MOTHER NEVER LISTENS TO YOU - IS THAT STILL ON YOUR MIND",
        ),
        ("I don't know.", "WHY DO YOU SUPPOSE YOU DON'T KNOW"),
        ("I'm so tired", "WHAT DO YOU THINK IS WEARING YOU OUT"),
        ("Can you help me?", "WHAT WOULD IT MEAN TO YOU IF I COULD HELP YOU"),
        ("I am lonely", "WHEN DO YOU FEEL LONELIEST"),
        ("Thanks, bye.", "YOU'RE VERY WELCOME"),
    ]
    # The eleventh input runs with LIMIT 4 and no keyword: the memory from input 3.
    for index, (text, expected) in enumerate(exchanges):
        assert engine.respond(text) == expected, f"exchange {index}: {text!r}"
