"""Saving and restoring a conversation: the state survives JSON without changing a reply."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agents.eliza import Eliza, ElizaState, Script, parse_script

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "eliza"
CONVERSATIONS: list[dict[str, Any]] = json.loads(
    (SHARED / "conversations.json").read_text("utf-8")
)["conversations"]


@pytest.fixture(scope="module")
def doctor() -> Script:
    return parse_script((SHARED / "DOCTOR-1966.txt").read_text("utf-8"))


def through_json(state: ElizaState) -> ElizaState:
    return ElizaState.from_dict(json.loads(json.dumps(state.to_dict())))


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c["name"] for c in CONVERSATIONS])
def test_resuming_at_every_split_point_gives_identical_replies(
    doctor: Script, conversation: dict[str, Any]
) -> None:
    inputs = [exchange["user"] for exchange in conversation["exchanges"]]
    uninterrupted = Eliza(doctor)
    expected = [uninterrupted.respond(text) for text in inputs]
    for split in range(len(inputs) + 1):
        first = Eliza(doctor)
        got = [first.respond(text) for text in inputs[:split]]
        resumed = Eliza(doctor, state=through_json(first.state))
        got += [resumed.respond(text) for text in inputs[split:]]
        assert got == expected, f"{conversation['name']} split after {split} inputs"


def test_fresh_state_to_dict() -> None:
    assert ElizaState().to_dict() == {"version": 1, "limit": 1, "counters": {}, "memory": []}


def test_state_after_a_conversation_holds_limit_counters_and_memory(doctor: Script) -> None:
    engine = Eliza(doctor)
    for text in ["My job is boring.", "Can he swim?"]:
        engine.respond(text)
    assert engine.state.to_dict() == {
        "version": 1,
        "limit": 3,
        "counters": {"MY#2": 1},
        "memory": ["LETS DISCUSS FURTHER WHY YOUR JOB IS BORING"],
    }


def test_from_dict_round_trip_is_equal() -> None:
    state = ElizaState(limit=4, counters={"MY#2": 3, "NONE#1": 0}, memory=["A", "B"])
    assert through_json(state) == state


def test_from_dict_does_not_share_the_callers_containers() -> None:
    data: dict[str, Any] = {"version": 1, "limit": 2, "counters": {"K#1": 1}, "memory": ["A"]}
    state = ElizaState.from_dict(data)
    data["counters"]["K#1"] = 5
    data["memory"].append("B")
    assert state == ElizaState(limit=2, counters={"K#1": 1}, memory=["A"])


def valid(**changes: Any) -> dict[str, Any]:
    return {"version": 1, "limit": 1, "counters": {}, "memory": [], **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "ELIZA state must be a dict, not list"),
        ({**valid(), "extra": 1}, "ELIZA state has unknown field(s): extra"),
        ({"version": 1, "limit": 1}, "ELIZA state is missing field(s): counters, memory"),
        (valid(version=2), "ELIZA state version must be 1, got 2"),
        (valid(version="1"), "ELIZA state version must be 1, got '1'"),
        (valid(limit=0), "ELIZA state 'limit' must be an integer from 1 to 4, got 0"),
        (valid(limit=5), "ELIZA state 'limit' must be an integer from 1 to 4, got 5"),
        (valid(limit=True), "ELIZA state 'limit' must be an integer from 1 to 4, got True"),
        (valid(limit="2"), "ELIZA state 'limit' must be an integer from 1 to 4, got '2'"),
        (valid(counters=[]), "ELIZA state 'counters' must be a dict of rule key to integer"),
        (
            valid(counters={"MY": 1}),
            "ELIZA state 'counters' key 'MY' is not a rule key like 'MY#2'",
        ),
        (
            valid(counters={"MY#2": -1}),
            "ELIZA state counter 'MY#2' must be a non-negative integer, got -1",
        ),
        (
            valid(counters={"MY#2": 1.5}),
            "ELIZA state counter 'MY#2' must be a non-negative integer, got 1.5",
        ),
        (valid(memory="A"), "ELIZA state 'memory' must be a list of strings"),
        (valid(memory=["A", 2]), "ELIZA state 'memory' must be a list of strings"),
    ],
)
def test_bad_state_raises_value_error(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ElizaState.from_dict(data)
