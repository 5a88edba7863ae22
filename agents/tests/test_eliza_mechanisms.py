"""Each mechanism of the 1966 engine in isolation, on tiny scripts written here."""

from __future__ import annotations

import pytest

from agents.eliza import Eliza, ElizaState, Script, parse_script
from agents.eliza.engine import tokenize

NONE = "(NONE ((0) (NONE ONE) (NONE TWO)))"


def make(*entries: str, memory: str = "", none: str = NONE, greeting: str = "(HI)") -> Script:
    return parse_script("\n".join([greeting, "START", *entries, memory, none, "()"]))


def replies(script: Script, *inputs: str, state: ElizaState | None = None) -> list[str]:
    engine = Eliza(script, state=state)
    return [engine.respond(text) for text in inputs]


ECHO = make("(ECHO ((0) (SAID 1)))")


# --- Normalisation -----------------------------------------------------------------


def test_tokenize_upper_cases_and_splits_commas_and_full_stops() -> None:
    assert tokenize("Hello, world.Again") == ["HELLO", ",", "WORLD", ".", "AGAIN"]


def test_tokenize_turns_question_and_exclamation_marks_into_full_stops() -> None:
    assert tokenize("why? now!") == ["WHY", ".", "NOW", "."]


def test_tokenize_turns_colons_semicolons_and_dashes_into_commas() -> None:
    assert tokenize("a:b;c\u2013d\u2014e") == ["A", ",", "B", ",", "C", ",", "D", ",", "E"]


def test_tokenize_keeps_the_ascii_hyphen_as_text() -> None:
    assert tokenize("well-being - again") == ["WELL-BEING", "-", "AGAIN"]


def test_tokenize_turns_the_right_single_quote_into_an_apostrophe() -> None:
    assert tokenize("don\u2019t") == ["DON'T"]


def test_tokenize_turns_quote_marks_and_inverted_marks_into_spaces() -> None:
    text = '"a" `b` \u2018c\u2019 \u201cd\u201d \u00abe\u00bb \u201ef\u201c \u00a1g! \u00bfh?'
    assert tokenize(text) == ["A", "B", "C'", "D", "E", "F", "G", ".", "H", "."]


def test_input_is_normalised_before_matching() -> None:
    assert replies(ECHO, "echo \u201cquoted\u201d don\u2019t") == ["SAID ECHO QUOTED DON'T"]


# --- Delimiters --------------------------------------------------------------------


def test_clause_before_a_delimiter_is_dropped_while_no_keyword_was_seen() -> None:
    assert replies(ECHO, "first, then echo this") == ["SAID THEN ECHO THIS"]


def test_text_after_a_delimiter_is_dropped_once_a_keyword_was_seen() -> None:
    assert replies(ECHO, "echo this. and that") == ["SAID ECHO THIS"]


def test_question_mark_cuts_like_a_full_stop() -> None:
    assert replies(ECHO, "echo this? and that") == ["SAID ECHO THIS"]


def test_but_is_a_delimiter() -> None:
    assert replies(ECHO, "first but echo this but not that") == ["SAID ECHO THIS"]


def test_input_of_only_delimiters_uses_none() -> None:
    assert replies(ECHO, ", . but") == ["NONE ONE"]


# --- Keystack and precedence ---------------------------------------------------------

# Each keyword answers only when its own marker word is in the text, otherwise NEWKEY,
# so the answer shows which keywords were tried first.
STACKED = make(
    *(
        f"({word} {precedence} ((0 OK{word} 0) ({word} ANSWERS)) ((0) (NEWKEY)))"
        for word, precedence in [("A", 0), ("B", 5), ("C", 5), ("D", 0), ("E", 9)]
    )
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Stack for "A B C D": B (5 > 0, on top), then A, C (5 is not > 5), D at the bottom.
        ("a b c d oka okb okc okd", "B ANSWERS"),
        ("a b c d oka okc okd", "A ANSWERS"),
        ("a b c d okc okd", "C ANSWERS"),
        ("a b c d okd", "D ANSWERS"),
        # Equal precedence never goes on top: the first 5 wins, the second sinks.
        ("c b okb okc", "C ANSWERS"),
        # A strictly higher precedence later in the input goes on top.
        ("b e oke okb", "E ANSWERS"),
        # Every occurrence is pushed: the second A is found after NEWKEY from the first.
        ("a a oka", "A ANSWERS"),
    ],
)
def test_keystack_order_follows_precedence(text: str, expected: str) -> None:
    assert replies(STACKED, text) == [expected]


# --- Substitution and DLIST ----------------------------------------------------------


def test_substitution_replaces_words_in_the_text() -> None:
    script = make("(MINE = YOURS)", "(ECHO ((0) (SAID 1)))")
    assert replies(script, "echo that is mine") == ["SAID ECHO THAT IS YOURS"]


def test_substitution_is_a_single_step() -> None:
    script = make("(A = B)", "(B = C)", "(ECHO ((0) (SAID 1)))")
    assert replies(script, "echo a b") == ["SAID ECHO B C"]


def test_keyword_is_pushed_as_written_and_its_rules_see_the_substitute() -> None:
    script = make("(I = YOU ((0 YOU 0) (YOU SAID 3)))")
    assert replies(script, "I like tea") == ["YOU SAID LIKE TEA"]


def test_substitution_only_words_are_never_pushed() -> None:
    script = make("(ME = YOU)", "(FAMILY DLIST(/KIN))", "(ECHO ((0) (SAID 1)))")
    assert replies(script, "me family") == ["NONE ONE"]
    # Not being keywords, they do not hold a clause across a delimiter either.
    assert replies(script, "me, echo") == ["SAID ECHO"]


DLISTED = make(
    "(MOTHER DLIST(/KIN PARENT))",
    "(MUM = MOTHER)",
    "(SIS = SISTER DLIST(/KIN))",
    "(ECHO ((0 (/PARENT) 0) (PARENT 2)) ((0 (/NOPE KIN) 0) (KIN 2)) ((0) (UNTAGGED)))",
)


def test_tag_pattern_matches_a_word_carrying_the_tag() -> None:
    assert replies(DLISTED, "echo mother") == ["PARENT MOTHER"]


def test_tag_pattern_matches_any_of_several_tags() -> None:
    script = make("(AUNT DLIST(/KIN))", "(ECHO ((0 (/NOPE KIN) 0) (KIN 2)))")
    assert replies(script, "echo aunt") == ["KIN AUNT"]


def test_tags_are_looked_up_on_the_word_after_substitution() -> None:
    # MUM becomes MOTHER and so carries MOTHER's tags.
    assert replies(DLISTED, "echo mum") == ["PARENT MOTHER"]
    # SIS becomes SISTER, which has no entry: the tag written on SIS does not follow it.
    assert replies(DLISTED, "echo sis") == ["UNTAGGED"]


# --- Decomposition -------------------------------------------------------------------


def decompose(pattern: str, text: str, reassembly: str) -> str:
    return replies(make(f"(K ({pattern} {reassembly}))"), text)[0]


def test_zero_matches_leftmost_shortest() -> None:
    assert decompose("(0 X 0)", "k a x b x c", "(L 1 R 3)") == "L K A R B X C"


def test_last_zero_may_match_nothing() -> None:
    assert decompose("(0 X 0)", "k x", "(L 1 R 3 END)") == "L K R END"


def test_zero_takes_more_words_when_the_rest_needs_it() -> None:
    # The first 0 cannot stop at "K": then 1 would have to match the two words "A Z".
    assert decompose("(0 A 1)", "k a a z", "(L 1 R 3)") == "L K A R Z"


def test_number_matches_exactly_that_many_words() -> None:
    assert decompose("(K 2 0)", "k a b c d", "(TWO 2 REST 3)") == "TWO A B REST C D"


def test_number_fails_when_too_few_words_remain() -> None:
    assert decompose("(K 2 0)", "k a", "(TWO 2)") == "HMMM"


def test_literal_must_match_exactly() -> None:
    assert decompose("(0 BLUE 0)", "k blues", "(YES)") == "HMMM"


def test_choice_matches_any_listed_word() -> None:
    assert decompose("(0 (* RED BLUE) 0)", "k blue sky", "(COLOUR 2)") == "COLOUR BLUE"


def test_glued_and_separate_choice_markers_are_the_same() -> None:
    assert decompose("(0 (*RED BLUE) 0)", "k red", "(COLOUR 2)") == "COLOUR RED"


def test_pattern_must_cover_the_whole_text() -> None:
    assert decompose("(K X)", "k x y", "(YES)") == "HMMM"


# --- Reassembly ----------------------------------------------------------------------


def test_reassemblies_cycle_and_wrap_around() -> None:
    script = make("(K ((0) (ONE) (TWO) (THREE)))")
    assert replies(script, "k", "k", "k", "k") == ["ONE", "TWO", "THREE", "ONE"]


def test_each_rule_has_its_own_counter() -> None:
    script = make("(K ((0 X 0) (X1) (X2)) ((0) (O1) (O2)))")
    assert replies(script, "k x", "k", "k x", "k") == ["X1", "O1", "X2", "O2"]


def test_script_words_are_output_verbatim_and_empty_parts_leave_no_gap() -> None:
    script = make("(K ((0 K 0) (REALLY, 1 NOW 3)))")
    assert replies(script, "k") == ["REALLY, NOW"]


def test_greeting_runs_of_spaces_collapse() -> None:
    script = make(greeting="(HELLO.    HOW   ARE YOU)")
    assert Eliza(script).greeting == "HELLO. HOW ARE YOU"


# --- Links, NEWKEY, PRE ----------------------------------------------------------------


def test_link_reassembly_continues_with_the_other_keywords_rules() -> None:
    script = make("(K ((0) (=L)))", "(L ((0) (FROM L 1)))")
    assert replies(script, "k x") == ["FROM L K X"]


def test_link_continues_on_the_already_transformed_text() -> None:
    script = make("(I = YOU ((0) (=L)))", "(L ((0 YOU 0) (L SAW 3)))")
    assert replies(script, "i x") == ["L SAW X"]


def test_whole_body_link_uses_the_other_keywords_rules_and_counter() -> None:
    script = make("(K (=L))", "(L ((0) (L1) (L2)))")
    assert replies(script, "k", "l", "k") == ["L1", "L2", "L1"]


def test_fallback_link_is_used_when_no_rule_matches() -> None:
    script = make("(K ((0 NEVER 0) (NO)) (=L))", "(L ((0) (FELL BACK)))")
    assert replies(script, "k", "k never") == ["FELL BACK", "NO"]


def test_newkey_moves_on_to_the_next_keyword() -> None:
    script = make("(A 5 ((0) (NEWKEY)))", "(B ((0) (B ANSWERS)))")
    assert replies(script, "b a") == ["B ANSWERS"]


def test_newkey_that_empties_the_keystack_uses_none_not_memory() -> None:
    script = make("(A ((0) (NEWKEY)))")
    # The next input runs with LIMIT 4 and a memory waiting; NEWKEY still goes to NONE.
    state = ElizaState(limit=3, memory=["REMEMBERED"])
    assert replies(script, "a", state=state) == ["NONE ONE"]
    assert replies(script, "nothing", state=state) == ["REMEMBERED"]


def test_newkey_advances_the_rule_counter_like_any_reassembly() -> None:
    script = make("(A ((0) (NEWKEY) (A ANSWERS)))")
    assert replies(script, "a", "a") == ["NONE ONE", "A ANSWERS"]


def test_pre_rewrites_the_text_then_continues_with_the_keyword() -> None:
    # L's pattern needs SEES, which only the PRE reassembly puts in the text.
    script = make("(K ((0 K 0) (PRE (L SEES 3) (=L))))", "(L ((0 SEES 0) (THEN 3)))")
    assert replies(script, "k x y") == ["THEN X Y"]


def test_links_that_chase_each_other_end_in_a_built_in_line() -> None:
    script = make("(A ((0) (=B)))", "(B ((0) (=A)))")
    assert replies(script, "a") == ["HMMM"]


# --- NONE, built-in lines, LIMIT ---------------------------------------------------------


def test_none_cycles_when_no_keyword_is_found() -> None:
    assert replies(ECHO, "x", "y", "z") == ["NONE ONE", "NONE TWO", "NONE ONE"]


def test_built_in_lines_follow_limit_which_starts_at_two() -> None:
    script = make("(K ((0 NEVER 0) (NO)))")
    assert replies(script, "k", "k", "k", "k", "k") == [
        "HMMM",
        "GO ON , PLEASE",
        "I SEE",
        "PLEASE CONTINUE",
        "HMMM",
    ]


# --- MEMORY ------------------------------------------------------------------------------

MEMORY = """(MEMORY MY
    (0 YOUR 0 = M0 3)
    (0 YOUR 0 = M1 3)
    (0 YOUR 0 = M2 3)
    (0 YOUR 0 = M3 3))"""
REMEMBERING = make("(MY = YOUR 2 ((0 YOUR 0) (YOUR 3)))", "(ECHO 5 ((0) (SAID 1)))", memory=MEMORY)


def test_memory_is_laid_down_by_hash_and_recalled_at_limit_four() -> None:
    # HASH of the last word picks the transformation: DEVONSHIRE -> 0 (see SPEC.md).
    assert replies(REMEMBERING, "my trip to Devonshire", "nothing", "nothing", "nothing") == [
        "YOUR TRIP TO DEVONSHIRE",  # LIMIT 2
        "NONE ONE",  # LIMIT 3
        "M0 TRIP TO DEVONSHIRE",  # LIMIT 4, keystack empty: oldest memory
        "NONE TWO",  # LIMIT 1
    ]


def test_memories_come_back_oldest_first() -> None:
    # PURPOSE -> 1, PREDICAMENT -> 3; LIMIT runs 2, 3, 4, 1, 2, 3, 4.
    inputs = ["my purpose", "my predicament", "x", "x", "x", "x", "x"]
    assert replies(REMEMBERING, *inputs) == [
        "YOUR PURPOSE",
        "YOUR PREDICAMENT",
        "M1 PURPOSE",
        "NONE ONE",
        "NONE TWO",
        "NONE ONE",
        "M3 PREDICAMENT",
    ]


def test_memory_hash_uses_the_last_word_of_the_truncated_text() -> None:
    state = ElizaState(limit=2)  # the next input runs with LIMIT 3, the one after with 4
    out = replies(REMEMBERING, "my gloucestershire, purpose", "nothing", state=state)
    assert out == ["YOUR GLOUCESTERSHIRE", "M2 GLOUCESTERSHIRE"]


def test_memory_is_only_laid_down_when_the_memory_keyword_is_popped() -> None:
    state = ElizaState(limit=2)
    # ECHO (precedence 5) answers; MY stays on the stack and lays down nothing.
    assert replies(REMEMBERING, "echo my devonshire", "nothing", state=state) == [
        "SAID ECHO YOUR DEVONSHIRE",
        "NONE ONE",
    ]


def test_memory_is_not_recalled_while_a_keyword_answers() -> None:
    state = ElizaState(limit=3, memory=["OLD"])
    assert replies(REMEMBERING, "echo", state=state) == ["SAID ECHO"]


def test_memory_is_not_laid_down_when_its_pattern_does_not_match() -> None:
    memory = MEMORY.replace("(0 YOUR 0 = M0 3)", "(0 YOUR 0 NEVER = M0 3)")
    script = make("(MY = YOUR 2 ((0 YOUR 0) (YOUR 3)))", memory=memory)
    assert replies(script, "my devonshire", "x", "x") == ["YOUR DEVONSHIRE", "NONE ONE", "NONE TWO"]


# --- State ownership -----------------------------------------------------------------------


def test_engine_copies_the_state_it_is_given() -> None:
    state = ElizaState(limit=3, memory=["OLD"])
    replies(REMEMBERING, "nothing", state=state)
    assert state == ElizaState(limit=3, memory=["OLD"])


def test_state_property_is_a_snapshot() -> None:
    engine = Eliza(ECHO)
    snapshot = engine.state
    engine.respond("x")
    assert snapshot == ElizaState()
    assert engine.state == ElizaState(limit=2, counters={"NONE#1": 1})
