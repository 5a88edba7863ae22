"""Conversations record what they ran with; turns are appended whole, in order."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from agents.services import prompt_version_create
from conversations.models import Channel, Conversation, Role, Turn
from conversations.services import (
    conversation_end,
    conversation_get_or_start,
    conversation_start,
    turn_record,
)

pytestmark = pytest.mark.django_db


def test_a_conversation_records_the_prompt_version_it_ran_with(make_agent) -> None:
    agent = make_agent(prompt_text="First prompt.")
    before = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    prompt_version_create(agent=agent, text="Second prompt.")
    after = conversation_start(agent=agent, channel=Channel.WEB_TEXT)
    assert before.prompt_version.text == "First prompt."
    assert after.prompt_version.text == "Second prompt."
    assert before.agent_snapshot["llm_provider"] == "eliza"


def test_turns_get_consecutive_indexes(make_agent) -> None:
    conversation = conversation_start(agent=make_agent(), channel=Channel.HUME_CLM)
    turns = [
        turn_record(conversation=conversation, role=Role.USER, text="hello"),
        turn_record(conversation=conversation, role=Role.ASSISTANT, text="HI"),
        turn_record(conversation=conversation, role=Role.USER, text="bye"),
    ]
    assert [(t.index, t.role, t.text, t.heard_text) for t in turns] == [
        (0, "user", "hello", "hello"),
        (1, "assistant", "HI", "HI"),
        (2, "user", "bye", "bye"),
    ]


def test_a_turn_and_its_engine_state_are_stored_together(make_agent) -> None:
    conversation = conversation_start(agent=make_agent(), channel=Channel.HUME_CLM)
    turn_record(conversation=conversation, role=Role.ASSISTANT, text="x", engine_state={"limit": 3})
    conversation.refresh_from_db()
    assert conversation.engine_state == {"limit": 3}


def test_an_interrupted_turn_keeps_generated_and_heard_text(make_agent) -> None:
    conversation = conversation_start(agent=make_agent(), channel=Channel.WEB_VOICE)
    turn = turn_record(
        conversation=conversation,
        role=Role.ASSISTANT,
        text="One. Two. Three.",
        heard_text="One.",
        interrupted=True,
        voice_to_voice_ms=420,
    )
    stored = Turn.objects.get(pk=turn.pk)
    assert (stored.text, stored.heard_text, stored.interrupted, stored.voice_to_voice_ms) == (
        "One. Two. Three.",
        "One.",
        True,
        420,
    )


def test_only_assistant_turns_can_be_interrupted(make_agent) -> None:
    conversation = conversation_start(agent=make_agent(), channel=Channel.WEB_VOICE)
    with pytest.raises(IntegrityError), transaction.atomic():
        turn_record(conversation=conversation, role=Role.USER, text="x", interrupted=True)
    assert not Turn.objects.exists()


def test_an_external_session_id_maps_to_one_conversation(make_agent) -> None:
    agent = make_agent()
    first, created = conversation_get_or_start(
        agent=agent, channel=Channel.HUME_CLM, external_id="user-42"
    )
    again, created_again = conversation_get_or_start(
        agent=agent, channel=Channel.HUME_CLM, external_id="user-42"
    )
    assert (created, created_again, again.pk) == (True, False, first.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        conversation_start(agent=agent, channel=Channel.HUME_CLM, external_id="user-42")
    assert Conversation.objects.count() == 1


def test_ending_a_conversation_stamps_the_time(make_agent) -> None:
    conversation = conversation_end(
        conversation=conversation_start(agent=make_agent(), channel=Channel.WEB_TEXT)
    )
    conversation.refresh_from_db()
    assert conversation.status == "ended"
    assert conversation.ended_at is not None
    assert conversation.ended_at >= conversation.started_at
