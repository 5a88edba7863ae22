"""Parsing Hume CLM payloads and building the frames we send back."""

from __future__ import annotations

import json

import pytest
from hume.empathic_voice.types import AssistantEnd, AssistantInput

from conversations.clm.protocol import (
    ClmError,
    assistant_end,
    assistant_input,
    error_frame,
    parse_sse_body,
    parse_ws_payload,
    strip_expressions,
)
from conversations.tests.hume_payloads import (
    payload,
    sdk_assistant,
    sdk_user,
    sparse_assistant,
    sparse_user,
)

MB = 1024 * 1024


def test_sdk_built_history_is_parsed_with_prosody_and_time() -> None:
    raw = payload(
        [
            sdk_user("I feel low {sad, tired}", begin=0, end=900, Sadness=0.8),
            sdk_assistant("Tell me more."),
            sdk_user("Work is hard. {very anxious}", begin=2000, end=3100, Anxiety=0.7),
        ],
        session_id="user-42",
    )
    request = parse_ws_payload(raw, max_bytes=MB)
    assert request.session_id == "user-42"
    assert [(m.role, m.content) for m in request.history] == [
        ("user", "I feel low"),
        ("assistant", "Tell me more."),
        ("user", "Work is hard."),
    ]
    assert request.last_user.time == {"begin": 2000, "end": 3100}
    assert request.last_user.prosody["Anxiety"] == 0.7
    assert len(request.last_user.prosody) == 48


def test_sparse_hand_written_payload_is_accepted() -> None:
    raw = payload([sparse_user("Hello {happy}", {"Joy": 0.5, "Calmness": 0.2})])
    request = parse_ws_payload(raw, max_bytes=MB)
    assert request.session_id is None
    assert request.last_user.content == "Hello"
    assert request.last_user.prosody == {"Joy": 0.5, "Calmness": 0.2}
    assert request.last_user.time is None


def test_unknown_keys_and_system_entries_are_ignored() -> None:
    raw = json.dumps(
        {
            "messages": [
                {"message": {"role": "system", "content": "ctx"}, "models": {}},
                {
                    "message": {"role": "user", "content": "Hi"},
                    "extra": [1, 2],
                    "models": {"prosody": None},
                },
            ],
            "custom_session_id": None,
            "something_new": True,
        }
    )
    request = parse_ws_payload(raw, max_bytes=MB)
    assert [(m.role, m.content) for m in request.history] == [("user", "Hi")]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("I got the job!! {extremely excited, very happy}", "I got the job!!"),
        ("No block here", "No block here"),
        ("Braces {in the middle} stay", "Braces {in the middle} stay"),
        ("  {only a block}  ", ""),
    ],
)
def test_strip_expressions(content: str, expected: str) -> None:
    assert strip_expressions(content) == expected


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("not json", "invalid_json", "the frame is not valid JSON"),
        ('{"foo": 1}', "invalid_payload", "messages: Field required"),
        ('{"messages": "hello"}', "invalid_payload", "messages: Input should be a valid list"),
        ('{"messages": [{"message": {"role": 5}}]}', "invalid_payload", "messages.0.message.role"),
        ('{"messages": []}', "invalid_payload", "there is no user message to answer"),
        (payload([sparse_assistant("Only me.")]), "invalid_payload", "there is no user message"),
        (payload([sparse_user("{just a block}")]), "invalid_payload", "there is no user message"),
        ("[1, 2]", "invalid_payload", "Input should be a valid dictionary"),
        # Found by fuzzing: text the database cannot store, numbers JSON does not have.
        (payload([sparse_user("a\x00b")]), "invalid_payload", "must not contain U+0000"),
        ('{"messages": [], "\\u0000": 1}', "invalid_payload", "must not contain U+0000"),
        ('{"messages": [NaN]}', "invalid_json", "NaN is not JSON"),
        (
            payload([sparse_user("Hi.", {"Joy": float("inf")})]).replace("Infinity", "1e999"),
            "invalid_payload",
            "Input should be a finite number",
        ),
        (payload([sparse_user("Hi.")], "s" * 256), "invalid_payload", "at most 255 characters"),
        ("[" * 100_000 + "]" * 100_000, "invalid_json", "nested too deeply"),
    ],
)
def test_bad_payloads_raise_documented_errors(raw: str, code: str, message: str) -> None:
    with pytest.raises(ClmError) as info:
        parse_ws_payload(raw, max_bytes=MB)
    assert info.value.code == code
    assert message in info.value.message


def test_oversize_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ClmError) as info:
        parse_ws_payload("x" * 2049, max_bytes=2048)
    assert (info.value.code, info.value.message) == (
        "payload_too_large",
        "the frame has 2049 bytes; the limit is 2048",
    )


def test_sse_body_with_flattened_messages() -> None:
    body = json.dumps(
        {
            "model": "hume",
            "messages": [
                {
                    "role": "user",
                    "content": "Hi {calm}",
                    "time": {"begin": 1, "end": 2},
                    "models": {"prosody": {"scores": {"Calmness": 0.9}}},
                },
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Help me."},
            ],
        }
    ).encode()
    request = parse_sse_body(body, session_id="abc", max_bytes=MB)
    assert request.session_id == "abc"
    assert [(m.role, m.content) for m in request.history] == [
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "Help me."),
    ]
    assert request.history[0].prosody == {"Calmness": 0.9}


def test_frames_validate_with_the_hume_sdk_and_carry_no_other_keys() -> None:
    frame = json.loads(assistant_input("Hello there."))
    assert AssistantInput.model_validate(frame).text == "Hello there."
    assert set(frame) == {"type", "text"}
    end = json.loads(assistant_end())
    AssistantEnd.model_validate(end)
    assert end == {"type": "assistant_end"}


def test_error_frame_shape() -> None:
    assert json.loads(error_frame("invalid_json", "bad")) == {
        "type": "error",
        "code": "invalid_json",
        "message": "bad",
    }
